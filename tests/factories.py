"""Test data made through the real services (real files in storage, real thumbnails)."""

from __future__ import annotations

import io
import itertools
import struct
import zlib

import factory
from django.contrib.auth import get_user_model
from PIL import Image as PILImage
from PIL import ImageDraw

from albums import services
from albums.models import Album, Image

_colors = itertools.count(1)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: int | None = None) -> bytes:
    """A real, unique image file (a different colour each call unless one is given)."""
    n = next(_colors) if color is None else color
    rgb = (n % 256, (n // 256) % 256, (n // 65536) % 256)
    img = PILImage.new("RGB", size, rgb)
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def png_bomb_bytes(width: int = 30000, height: int = 30000) -> bytes:
    """A small, valid-looking PNG whose header declares width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * 16)  # far fewer rows than declared: never meant to decode
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def scene_png(size=(256, 192)) -> bytes:
    """A real picture (sky, ground, a sun and a house), not a flat colour."""
    img = PILImage.new("RGB", size, (120, 170, 230))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, size[1] * 2 // 3, size[0], size[1]], fill=(70, 140, 60))
    draw.ellipse([20, 15, 70, 65], fill=(250, 220, 90))
    draw.rectangle([140, 80, 220, 140], fill=(160, 80, 60))
    draw.polygon([(130, 80), (180, 40), (230, 80)], fill=(110, 40, 30))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("pw")


class AdminFactory(UserFactory):
    is_staff = True
    is_superuser = True


class AlbumFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Album

    name = factory.Sequence(lambda n: f"Album {n}")
    slug = factory.Sequence(lambda n: f"album-{n}")
    is_public = True


def make_image(*, fmt: str = "PNG", album: Album | None = None, nsfw_check: str | None = None, **fields):
    """Store a real image through the upload service; flags and metadata as keyword arguments.

    `nsfw_check` puts the stored image in that NSFW check state (as the check would leave it),
    whatever the autocheck made of it.
    """
    data = io.BytesIO(image_bytes(fmt))
    image, created = services.store_image(data, original_filename=f"test.{fmt.lower()}", album=album, **fields)
    assert created
    if nsfw_check is not None:
        Image.objects.filter(pk=image.pk).update(nsfw_check=nsfw_check)
        image.refresh_from_db()
    return image


# Every job kind by its model's name (tests that go through the lifecycle for each kind).
JOB_KINDS = [
    "ThumbnailJob",
    "GenerationJob",
    "SetRun",
    "LabelingRun",
    "NsfwCheckJob",
    "ImportRun",
    "TrainingRun",
    "ScrapeJob",
    "PurgeRun",
]


def make_job_row(label: str):
    """A queued row of each job kind, with the least its model requires."""
    from albums.models import ThumbnailJob
    from generation.models import DiffusionModel, GenerationJob, ModelSource, SetRun
    from imagineer.ops.models import PurgeRun, RetentionPolicy
    from labeling.models import LabelingRun, NsfwCheckJob
    from legacy.models import ImportRun
    from training.models import ScrapeJob, TrainingRun

    def model() -> DiffusionModel:
        return DiffusionModel.objects.create(name=f"m-{label}", source_type=ModelSource.HUB, source="org/m")

    if label == "ThumbnailJob":
        return ThumbnailJob.objects.create()
    if label == "GenerationJob":
        return GenerationJob.objects.create(
            prompt="p", model=model(), scheduler="euler", steps=1, guidance_scale=1, width=64, height=64, seed=1
        )
    if label == "SetRun":
        template = Album.objects.create(name="Deck", slug="deck", is_set_template=True)
        return SetRun.objects.create(template=template, album_name="Out", theme="t", model=model())
    if label == "LabelingRun":
        return LabelingRun.objects.create(labeler="nudenet")
    if label == "NsfwCheckJob":
        return NsfwCheckJob.objects.create(labeler="nudenet")
    if label == "ImportRun":
        return ImportRun.objects.create()
    if label == "TrainingRun":
        return TrainingRun.objects.create(name="r", model=model(), log_file="training/logs/r.log")
    if label == "ScrapeJob":
        return ScrapeJob.objects.create(name="s", start_url="http://127.0.0.1:1/")
    if label == "PurgeRun":
        policy = RetentionPolicy.objects.create(name="p", target="bug_reports", max_age_days=30)
        return PurgeRun.objects.create(policy=policy, target="bug_reports", max_age_days=30)
    raise AssertionError(label)


def make_worker_row(
    queues: list[str],
    *,
    name: str | None = None,
    held: list[str] | tuple[str, ...] = (),
    held_task_ids: list[str] | tuple[str, ...] = (),
    silent_for: float = 1.0,
    stopped: bool = False,
    free_for: float | None = None,
    concurrency: int = 1,
):
    """A Celery worker's last report, as the worker writes it (imagineer/core/workers.py): seen
    `silent_for` seconds ago (more than IMAGINEER_WORKER_STALE_AFTER_SECONDS: dead), stopped cleanly
    or not, holding `held` job keys (their messages' `held_task_ids`), with a free pool slot for the last `free_for` seconds (None: busy)."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from imagineer.core.models import CeleryWorker

    now = timezone.now()
    seen = now - timedelta(seconds=silent_for)
    return CeleryWorker.objects.create(
        instance=uuid.uuid4().hex,
        name=name or f"w-{uuid.uuid4().hex[:6]}@host",
        pid=4321,
        queues=queues,
        concurrency=concurrency,
        held_jobs=list(held),
        held_task_ids=list(held_task_ids),
        free_slot_since=None if free_for is None else now - timedelta(seconds=free_for),
        started_at=seen - timedelta(hours=1),
        last_seen_at=seen,
        stopped_at=seen if stopped else None,
    )
