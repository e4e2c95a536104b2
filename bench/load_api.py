"""Benchmark: the read API under load — gunicorn on loopback, locust, 100,000 seeded images.

Seeds a throw-away PostgreSQL database (or SQLite with --sqlite) with `--images` image rows (10 %
private, 5 % NSFW, so the visibility filter has work), a few hundred real files they share, one
finished generation job; starts gunicorn (`--workers`) on 127.0.0.1 and drives it with locust,
headless, in two phases of `--seconds` each:

  baseline: GET /healthz only (Django answers without the database): the yardstick;
  api:      image list (random page), image detail, thumbnail, job status, weighted 4:3:4:2.

Prints requests/s, p50 and p99 latency and errors per endpoint, and each endpoint's requests/s as
a ratio of the baseline's. Zero errors is part of the result: the script exits 1 otherwise.

    .venv/bin/python bench/load_api.py [--images 100000] [--users 16] [--seconds 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/imagineer_load"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(images: int) -> dict:
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage
    from rest_framework.authtoken.models import Token

    from albums.models import Image
    from albums.services import build_thumbnail
    from generation.models import DiffusionModel, GenerationJob, ModelSource
    from imagineer.core.models import JobStatus, User

    reader = User.objects.create_user("reader", password="x")
    token = Token.objects.create(user=reader).key
    files = []
    for number in range(200):  # real files the rows share: the thumbnail endpoint streams real bytes
        buffer = io.BytesIO()
        PILImage.effect_noise((512, 512), 30 + number % 50).convert("RGB").save(buffer, "PNG")
        files.append(default_storage.save(f"images/load/{number}.png", ContentFile(buffer.getvalue())))
    rows = [
        Image(
            file=files[i % len(files)],
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            width=512,
            height=512,
            format="PNG",
            file_size=1000,
            prompt=f"load test prompt {i}",
            is_public=i % 10 != 0,
            is_nsfw=i % 20 == 7,
        )
        for i in range(images)
    ]
    Image.objects.bulk_create(rows, batch_size=5000)
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would soon after a bulk load: real row estimates
    public_ids = list(Image.objects.filter(is_public=True, is_nsfw=False).values_list("pk", flat=True)[:2000])
    # One thumbnail per distinct file, given to every row of that file: the steady state of a
    # gallery (thumbnails exist), not the first-read cost of making them.
    for name in files:
        first = Image.objects.filter(file=name).order_by("pk").first()
        build_thumbnail(first)
        first.refresh_from_db()
        Image.objects.filter(file=name).update(thumbnail=first.thumbnail.name)
    model = DiffusionModel.objects.create(name="load", source_type=ModelSource.DIFFUSERS_DIR, source="x")
    job = GenerationJob.objects.create(
        prompt="p",
        model=model,
        scheduler="euler",
        steps=1,
        guidance_scale=1,
        width=64,
        height=64,
        seed=1,
        created_by=reader,
        status=JobStatus.SUCCEEDED,
    )
    job.images.set(public_ids[:4])
    from django.conf import settings

    visible = Image.objects.filter(is_public=True, is_nsfw=False).count()
    pages = max(1, visible // settings.IMAGINEER_PAGE_SIZE)
    return {"token": token, "job_id": job.pk, "image_ids": public_ids, "pages": pages}


def run_locust(host: str, tag: str, users: int, seconds: int, env: dict, out: Path) -> list[dict]:
    prefix = out / tag
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "bench" / "locustfile_api.py"),
            "--headless",
            "--tags",
            tag,
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["Name"] != "Aggregated"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="imagineer-load-"))
    database = (
        f"sqlite:///{data_dir / 'load.sqlite3'}"
        if args.sqlite
        else os.environ.get("LOAD_DATABASE_URL", DEFAULT_DATABASE)
    )
    if not args.sqlite:
        recreate_postgres_database(database)
    env = {
        **os.environ,
        "IMAGINEER_DATA_DIR": str(data_dir),
        "DATABASE_URL": database,
        "DJANGO_SETTINGS_MODULE": "imagineer.settings",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seeded = seed(args.images)
    print(
        f"seeded {args.images} images in {time.perf_counter() - started:.1f} s ({'SQLite' if args.sqlite else 'PostgreSQL'})"
    )
    ids_file = data_dir / "image-ids.txt"
    ids_file.write_text(" ".join(map(str, seeded["image_ids"])))
    locust_env = {
        **env,
        "LOAD_IMAGE_IDS": str(ids_file),
        "LOAD_JOB_ID": str(seeded["job_id"]),
        "LOAD_TOKEN": seeded["token"],
        "LOAD_PAGES": str(seeded["pages"]),
    }

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "imagineer.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{host}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.5)
        results = {}
        for tag in ("baseline", "api"):
            for row in run_locust(host, tag, args.users, args.seconds, locust_env, data_dir):
                results[row["Name"]] = row
    finally:
        server.terminate()
        server.wait(timeout=30)

    baseline = float(results["healthz (baseline)"]["Requests/s"])
    print(
        f"gunicorn -w {args.workers} on 127.0.0.1, locust {args.users} users, {args.seconds} s per phase, "
        f"{args.images:,} images"
    )
    print(f"{'endpoint':<22}{'requests':>9}{'req/s':>9}{'vs base':>9}{'p50 ms':>8}{'p99 ms':>8}{'errors':>8}")
    errors = 0
    for name, row in results.items():
        rate = float(row["Requests/s"])
        errors += int(row["Failure Count"])
        print(
            f"{name:<22}{row['Request Count']:>9}{rate:>9.1f}{rate / baseline:>8.2f}x{row['50%']:>8}"
            f"{row['99%']:>8}{row['Failure Count']:>8}"
        )
    if errors:
        raise SystemExit(f"{errors} failed requests")


if __name__ == "__main__":
    main()
