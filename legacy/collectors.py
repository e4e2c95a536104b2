"""Scan the legacy roots (outputs, image packs) into one LegacyRecord per image.

The walk stays inside the roots: a symlink (to a file or a folder) whose resolved target is outside
every root is not followed but reported as skipped, under the link's own path and never its target,
unless the operator asked for it (`follow_links_outside`). A tree from elsewhere (a downloaded pack)
could otherwise pull any file the importing user can read into media, and from there to the API.
A broken link, or one that loops, is reported too. Links inside the roots are followed as before:
a symlinked root defines its root by its resolved path; directories are entered once, by
(st_dev, st_ino): real directories are walked first and symlinked ones afterwards, so an image is
collected under its real path and a symlink to a folder already seen (a cycle, or an alias of a
folder elsewhere in the roots) is reported once as skipped instead of being walked again. A file
reached through a link is collected under the link's path as well; the ingest stores its bytes once
and links the second occurrence as a duplicate.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection as NameCollection
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from legacy.metadata import read_metadata, read_sidecar, timestamp_of
from legacy.records import Collection, ImageMetadata, LegacyRecord, SkippedFile
from legacy.resolver import OUTPUTS, PACKS, Unplaced, folder_rule, resolve_album

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
THUMBNAILS = "thumbnails"

NOT_AN_IMAGE = "not an image"
ORPHAN_SIDECAR = "JSON sidecar without its image"
UNREADABLE = "unreadable"
EMPTY_FILE = "empty file"
NOT_A_REGULAR_FILE = "not a regular file"
BAD_FILE_NAME = "file name is not valid UTF-8"
THUMBNAILS_FOLDER = "thumbnails folder (not scanned)"
ALREADY_SCANNED = "symlink to a folder already scanned"
LINK_OUTSIDE_ROOTS = "symlink points outside the import roots"
BROKEN_LINK = "broken symlink: its target is missing or the link loops"


class LegacyRootMissing(Exception):
    """A root given to collect() is not an existing directory."""


@dataclass(frozen=True)
class _Entry:
    """One thing the walk found, in the order results are reported."""

    order: tuple[int, tuple[str, ...]]
    kind: str  # "image" | "skip" | "orphan"
    path: Path
    reason: str = ""
    sidecar_path: Path | None = None
    caption_path: Path | None = None

    @property
    def root(self) -> str:
        return (OUTPUTS, PACKS)[self.order[0]]

    @property
    def relative_path(self) -> str:
        return "/".join(self.order[1])


def collect(
    outputs: Path | None,
    packs: Path | None,
    *,
    private_packs: NameCollection[str] = (),
    limit: int | None = None,
    known: Mapping[str, tuple[int, int, datetime]] | None = None,
    follow_links_outside: bool = False,
) -> Collection:
    """Records for every image under the roots, plus what was skipped and the orphan sidecars.

    Results are in path order (outputs first). `limit` stops after that many records; files after
    the cut are not reported at all. Raises LegacyRootMissing before scanning if a root is missing.
    Symlinks out of the roots are skipped (LINK_OUTSIDE_ROOTS) unless `follow_links_outside`.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be zero or more")
    roots: list[tuple[int, Path]] = []
    for index, (label, given) in enumerate((("outputs", outputs), ("image packs", packs))):
        if given is None:
            continue
        path = Path(os.path.abspath(given))
        if not path.exists():
            raise LegacyRootMissing(f"The {label} folder {path} does not exist.")
        if not path.is_dir():
            raise LegacyRootMissing(f"The {label} folder {path} is not a directory.")
        roots.append((index, path))

    # None: every link is followed. Otherwise the roots as resolved, which a link's target must be under.
    inside = None if follow_links_outside else tuple(Path(os.path.realpath(path)) for _, path in roots)
    entries: list[_Entry] = []
    for index, path in roots:
        entries.extend(_walk(index, path, inside))
    entries.sort(key=lambda entry: entry.order)

    result = Collection(records=[], skipped=[], orphan_sidecars=[])
    for entry in entries:
        if limit is not None and len(result.records) >= limit:
            break
        if entry.kind == "orphan":
            result.orphan_sidecars.append(SkippedFile(entry.relative_path, entry.root, ORPHAN_SIDECAR))
            continue
        outcome = entry if entry.kind == "skip" else _record(entry, private_packs, known or {})
        if isinstance(outcome, LegacyRecord):
            result.records.append(outcome)
        else:
            result.skipped.append(SkippedFile(outcome.relative_path, outcome.root, outcome.reason))
    return result


def _walk(root_index: int, root: Path, inside: tuple[Path, ...] | None) -> list[_Entry]:
    entries: list[_Entry] = []
    visited = {_identity(os.stat(root))}
    stack: list[tuple[tuple[str, ...], Path]] = [((), root)]
    linked: list[tuple[tuple[str, ...], Path]] = []

    def skip(parts: tuple[str, ...], reason: str) -> None:
        entries.append(_Entry((root_index, parts), "skip", root.joinpath(*parts), reason))

    while stack or linked:
        if not stack:
            # Real directories are all walked; now the symlinked ones, in path order.
            linked.sort()
            parts, path = linked.pop(0)
            try:
                identity = _identity(os.stat(path))
            except OSError:
                skip(parts, UNREADABLE)
                continue
            if identity in visited:
                skip(parts, ALREADY_SCANNED)
                continue
            visited.add(identity)
            stack.append((parts, path))
            continue
        parts, path = stack.pop()
        try:
            with os.scandir(path) as listing:
                children = list(listing)
        except OSError:
            skip(parts, UNREADABLE)
            continue
        files: list[os.DirEntry] = []
        for child in children:
            child_parts = (*parts, child.name)
            is_dir = _is_dir(child)
            if is_dir and child.name.startswith("."):
                continue  # .git, .ipynb_checkpoints, .Trashes: never legacy albums
            if is_dir and child.name.lower() == THUMBNAILS:
                skip(child_parts, THUMBNAILS_FOLDER)
                continue
            refusal = _link_refusal(child, inside) if child.is_symlink() else None
            if refusal:
                skip(child_parts, refusal)
            elif not is_dir:
                files.append(child)
            elif child.is_symlink():
                linked.append((child_parts, Path(child.path)))
            else:
                try:
                    identity = _identity(child.stat())
                except OSError:
                    skip(child_parts, UNREADABLE)
                    continue
                if identity not in visited:
                    visited.add(identity)
                    stack.append((child_parts, Path(child.path)))
        entries.extend(_directory_entries(root_index, parts, files))
    return entries


def _link_refusal(link: os.DirEntry, inside: tuple[Path, ...] | None) -> str | None:
    """Why the walk does not follow this symlink, or None when it does.

    The target is resolved whole (links in links, `..`), so a chain that leaves the roots and comes
    back is judged by where it ends. strict: a missing target or a loop raises instead of resolving.
    """
    try:
        target = Path(os.path.realpath(link.path, strict=True))
    except OSError:
        return BROKEN_LINK
    if inside is not None and not any(target.is_relative_to(root) for root in inside):
        return LINK_OUTSIDE_ROOTS
    return None


def _directory_entries(root_index: int, parts: tuple[str, ...], files: list[os.DirEntry]) -> list[_Entry]:
    """Images with their companions, orphan sidecars and skipped files of one directory."""
    by_lower: dict[str, list[os.DirEntry]] = {}
    for entry in files:
        by_lower.setdefault(entry.name.lower(), []).append(entry)
    captions_wanted = root_index == 1  # .txt captions belong to reference packs only
    claimed: set[str] = set()
    entries: list[_Entry] = []

    def companion(names: tuple[str, ...]) -> Path | None:
        for wanted in names:
            matches = by_lower.get(wanted.lower(), [])
            exact = [m for m in matches if m.name == wanted]
            if exact or matches:
                chosen = (exact or sorted(matches, key=lambda m: m.name))[0]
                claimed.add(chosen.name)
                return Path(chosen.path)
        return None

    images = [e for e in files if not e.name.startswith(".") and _suffix(e.name) in IMAGE_SUFFIXES]
    for image in images:
        stem = image.name[: -len(_suffix(image.name))]
        sidecar = companion((stem + ".json", image.name + ".json"))
        caption = companion((stem + ".txt",)) if captions_wanted else None
        entries.append(_Entry((root_index, (*parts, image.name)), "image", Path(image.path), "", sidecar, caption))
    image_names = {image.name for image in images}
    for entry in files:
        if entry.name in image_names or entry.name in claimed:
            continue
        order = (root_index, (*parts, entry.name))
        if not entry.name.startswith(".") and _suffix(entry.name) == ".json":
            entries.append(_Entry(order, "orphan", Path(entry.path)))
        else:
            entries.append(_Entry(order, "skip", Path(entry.path), NOT_AN_IMAGE))
    return entries


def _record(
    entry: _Entry, private_packs: NameCollection[str], known: Mapping[str, tuple[int, int, datetime]]
) -> LegacyRecord | _Entry:
    """The record for one image file, or the entry re-labelled as skipped with the reason.

    `known`: source path → (size, mtime_ns, timestamp) of files an earlier run handled. One whose
    size and mtime are unchanged is not opened and its sidecar not read: the importer will not
    look at its metadata again, and its stored timestamp places it in the same album.
    """
    relative_path = entry.relative_path
    if not _is_utf8(relative_path):
        return _skipped(entry, BAD_FILE_NAME)
    rule = folder_rule(entry.root, relative_path)
    if isinstance(rule, Unplaced):
        return _skipped(entry, rule.reason)
    try:
        info = os.stat(entry.path)
    except OSError:
        return _skipped(entry, UNREADABLE)
    if not stat.S_ISREG(info.st_mode):
        return _skipped(entry, NOT_A_REGULAR_FILE)  # a FIFO named .png would block the read below
    if info.st_size == 0:
        return _skipped(entry, EMPTY_FILE)
    seen = known.get(str(entry.path))
    if seen is not None and seen[:2] == (info.st_size, info.st_mtime_ns):
        return _placed_record(
            entry,
            relative_path,
            info,
            private_packs,
            timestamp=seen[2],
            timestamp_source="known",
            metadata=ImageMetadata(),
        )
    try:
        with open(entry.path, "rb") as handle:
            handle.read(1)
    except OSError:
        return _skipped(entry, UNREADABLE)

    sidecar = read_sidecar(entry.sidecar_path)
    metadata = read_metadata(
        entry.path, caption_file=entry.root == PACKS, sidecar=sidecar, caption_path=entry.caption_path
    )
    timestamp, timestamp_source = timestamp_of(sidecar.data, entry.path.name, info.st_mtime)
    return _placed_record(
        entry,
        relative_path,
        info,
        private_packs,
        timestamp=timestamp,
        timestamp_source=timestamp_source,
        metadata=metadata,
    )


def _placed_record(
    entry: _Entry,
    relative_path: str,
    info: os.stat_result,
    private_packs: NameCollection[str],
    *,
    timestamp: datetime,
    timestamp_source: str,
    metadata: ImageMetadata,
) -> LegacyRecord | _Entry:
    placement = resolve_album(entry.root, relative_path, timestamp, private_packs=private_packs)
    if isinstance(placement, Unplaced):  # folder_rule already passed; kept for the type checker
        return _skipped(entry, placement.reason)
    return LegacyRecord(
        source_path=entry.path,
        root=entry.root,
        relative_path=relative_path,
        category=placement.category,
        album_key=placement.key,
        album_name=placement.name,
        album_slug=placement.slug,
        album_type=placement.album_type,
        album_private=placement.private,
        album_description=placement.description,
        timestamp=timestamp,
        timestamp_source=timestamp_source,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        metadata=metadata,
        sidecar_path=entry.sidecar_path,
        caption_path=entry.caption_path,
    )


def _skipped(entry: _Entry, reason: str) -> _Entry:
    return _Entry(entry.order, "skip", entry.path, reason)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir turned undecodable bytes into lone surrogates
        return False
    return True
