"""The bounded walk: apparent size and file count of one directory tree, stopped at a deadline.

os.scandir, never following a symlink, never leaving the tree's filesystem, counting a hard-linked
file once, skipping what it may not read or what vanishes mid-walk. No database, no Django.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TreeUsage:
    size_bytes: int = 0
    file_count: int = 0
    dir_count: int = 0  # subdirectories walked (the root not counted)
    skipped_entries: int = 0  # unreadable, or gone between listing and stat
    complete: bool = True  # False: the deadline stopped the walk


def measure_tree(root: Path, *, deadline: float, clock: Callable[[], float] = time.monotonic) -> TreeUsage:
    """Size and file count of the tree at `root`, walked until `deadline` (a `clock()` value).

    The root itself may be a symlink (a media folder moved to another disk); nothing under it is
    followed. Symlinks, sockets and devices are neither followed nor counted; subdirectories on another
    filesystem are skipped (they belong to another mount). Never raises for what it meets on disk.
    """
    usage = TreeUsage()
    try:
        root_info = os.stat(root)
    except OSError:
        usage.skipped_entries += 1
        return usage
    if not stat.S_ISDIR(root_info.st_mode):
        usage.size_bytes, usage.file_count = root_info.st_size, 1
        return usage
    device = root_info.st_dev
    linked: set[int] = set()  # inodes with more than one link, counted once
    pending = [os.fspath(root)]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if clock() > deadline:
                        usage.complete = False
                        return usage
                    _count_entry(entry, usage, pending, device, linked)
        except OSError:
            usage.skipped_entries += 1  # permission denied, or the directory vanished
    return usage


def _count_entry(entry: os.DirEntry, usage: TreeUsage, pending: list[str], device: int, linked: set[int]) -> None:
    try:
        if entry.is_dir(follow_symlinks=False):
            if entry.stat(follow_symlinks=False).st_dev == device:
                usage.dir_count += 1
                pending.append(entry.path)
        elif entry.is_file(follow_symlinks=False):
            info = entry.stat(follow_symlinks=False)
            if info.st_nlink > 1:
                if info.st_ino in linked:
                    return
                linked.add(info.st_ino)
            usage.size_bytes += info.st_size
            usage.file_count += 1
    except OSError:
        usage.skipped_entries += 1
