"""Benchmark: `manage.py import_legacy_media` against reading and hashing the same files.

Generates a legacy outputs tree of N 512×512 PNGs with JSON sidecars (singles and deck folders),
then, in one run on the same files (page cache warm for all three):
  (a) baseline: read every image file and SHA-256 it — the least any importer must do;
  (b) first import (--thumbnails none, copy mode) into an empty SQLite database and media folder;
  (c) second import over the same roots: a no-op.
Reports images/s for (a) and (b), (b) as a share of (a)'s speed, and (c)'s time as a share of (b)'s.
Targets (issue): (b) ≥ 50 % of (a)'s speed; (c) ≤ 5 % of (b)'s time.
For context only (no target): (a) plus writing each file's bytes to a new file, the least a copy
costs. --repeat N measures (a)-(c) N times on the same generated tree, the database and media
emptied in between.

    .venv/bin/python bench/legacy_import.py [--images 2000] [--size 512] [--mode copy|symlink] [--repeat 1]

Runs on a throw-away data dir (removed at the end); never part of the test suite. Before each
attempt the script waits (os.sync, untimed) until what it wrote before is on disk, so that
writeback of the generated tree or an earlier attempt does not land inside a measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_tree(outputs: Path, count: int, size: int) -> list[Path]:
    """Generated-looking PNGs (smooth noise, like diffusion output) with sidecars."""
    import random

    from PIL import Image

    rng = random.Random(7)
    paths = []
    for i in range(count):
        folder = outputs if i % 4 == 0 else outputs / f"card_deck_bench_{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.frombytes("RGB", (48, 48), rng.randbytes(48 * 48 * 3))
        path = folder / f"2025{1 + i % 12:02d}15_1200{i % 60:02d}_image_{i}.png"
        small.resize((size, size), Image.Resampling.BICUBIC).save(path, "PNG")
        sidecar = {
            "prompt": f"image {i}, oil painting",
            "seed": i,
            "steps": 30,
            "guidance_scale": 7.5,
            "lora": {"path": "loras/ink.safetensors", "weight": 0.6},
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar))
        paths.append(path)
    return paths


def read_and_hash(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - started


def read_hash_and_write(paths: list[Path], into: Path) -> float:
    into.mkdir()
    started = time.perf_counter()
    for i, path in enumerate(paths):
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        (into / f"{i}.png").write_bytes(data)
    elapsed = time.perf_counter() - started
    shutil.rmtree(into)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mode", choices=["copy", "symlink"], default="copy")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imagineer-bench-legacy-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
            "IMAGINEER_DATA_DIR": str(work / "data"),
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    outputs = work / "outputs"
    started = time.perf_counter()
    paths = make_tree(outputs, args.images, args.size)
    total_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"generated {len(paths)} PNGs of {args.size}px ({total_mb:.0f} MB) in {time.perf_counter() - started:.0f} s")
    call_command("migrate", verbosity=0)

    read_and_hash(paths)  # warm the page cache for every variant alike
    from django.conf import settings

    n = len(paths)
    command = ["import_legacy_media", "--outputs", str(outputs), "--thumbnails", "none", "--mode", args.mode]
    for attempt in range(args.repeat):
        if attempt:  # an empty database and media folder again
            call_command("flush", interactive=False, verbosity=0)
            shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
        os.sync()  # untimed: what was written before (the tree, an earlier attempt) is on disk first
        baseline = read_and_hash(paths)
        started = time.perf_counter()
        call_command(*command, stdout=io.StringIO())
        first = time.perf_counter() - started
        started = time.perf_counter()
        call_command(*command, stdout=io.StringIO())
        second = time.perf_counter() - started
        # After the imports: its 829 MB of writes would otherwise still be going to disk during them.
        with_write = read_hash_and_write(paths, work / "write-check") if args.mode == "copy" else None

        print()
        print("| what | seconds | images/s | vs baseline |")
        print("|---|---:|---:|---:|")
        print(f"| baseline: read + SHA-256 every file | {baseline:.2f} | {n / baseline:.0f} | 1.00x speed |")
        if with_write is not None:
            print(
                f"| (context) read + SHA-256 + write a copy | {with_write:.2f} | {n / with_write:.0f} |"
                f" {baseline / with_write:.2f}x speed |"
            )
        print(
            f"| first import ({args.mode}, no thumbnails) | {first:.2f} | {n / first:.0f} |"
            f" {baseline / first:.2f}x speed |"
        )
        print(
            f"| second import (no-op) | {second:.2f} | {n / second:.0f} |"
            f" {second / first * 100:.1f} % of the first run's time |"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
