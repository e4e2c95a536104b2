"""Benchmark: the upload path (API and service) against the raw Pillow work it cannot avoid.

Baseline, measured in the same run on the same images: decode the file fully, make a 256 px WebP
thumbnail, write original and thumbnail to disk. Ours adds hashing, bomb/format checks, storage
names, the database row, and (for the API) multipart parsing, auth and serialisation.

    .venv/bin/python bench/upload_pipeline.py [--images 30] [--size 1024] [--rounds 3]

Runs on a throw-away data dir and SQLite database; never part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(count: int, size: int) -> list[bytes]:
    import random

    from PIL import Image

    rng = random.Random(1234)
    images = []
    for _ in range(count):
        img = Image.effect_noise((size, size), rng.uniform(20, 80)).convert("RGB")
        out = io.BytesIO()
        img.save(out, "PNG")
        images.append(out.getvalue())
    return images


def raw_pillow(data: bytes, folder: Path, n: int) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        thumb = img.copy()
        thumb.thumbnail((256, 256))
        out = io.BytesIO()
        thumb.save(out, "WEBP", quality=85)
    (folder / f"{n}.png").write_bytes(data)
    (folder / f"{n}.webp").write_bytes(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="imagineer-bench-"))
    os.environ.update(
        {"IMAGINEER_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "imagineer.settings", "LOG_LEVEL": "WARNING"}
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from albums.models import Image
    from albums.services import store_image
    from imagineer.core.models import User

    call_command("migrate", verbosity=0)
    admin = User.objects.create_superuser("bench", "", "bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    from django.conf import settings

    settings.IMAGINEER_UPLOAD_RATE = "1000000/h"

    timings: dict[str, list[float]] = {"raw Pillow (baseline)": [], "store_image service": [], "POST /api/images/": []}
    for round_no in range(args.rounds):
        images = make_images(args.images, args.size)  # fresh bytes each round: no duplicate short-cut
        raw_dir = data_dir / f"raw{round_no}"
        raw_dir.mkdir()
        started = time.perf_counter()
        for n, data in enumerate(images):
            raw_pillow(data, raw_dir, n)
        timings["raw Pillow (baseline)"].append(time.perf_counter() - started)

        started = time.perf_counter()
        for data in images:
            store_image(io.BytesIO(data), original_filename="bench.png", user=admin)
        timings["store_image service"].append(time.perf_counter() - started)
        Image.objects.all().delete()

        started = time.perf_counter()
        for data in images:
            response = client.post(
                "/api/images/", {"file": SimpleUploadedFile("b.png", data, "image/png")}, format="multipart"
            )
            assert response.status_code == 201, response.content
        timings["POST /api/images/"].append(time.perf_counter() - started)
        Image.objects.all().delete()

    baseline = statistics.median(timings["raw Pillow (baseline)"])
    print(f"{args.images} PNG images of {args.size}x{args.size}, median of {args.rounds} rounds")
    print(f"{'path':28} {'ms/image':>9} {'vs baseline':>12}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:28} {median / args.images * 1000:9.1f} {median / baseline:11.2f}x")


if __name__ == "__main__":
    main()
