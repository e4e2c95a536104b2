"""The production shape with real parts: one PostgreSQL, one Redis, media in an S3 bucket (a moto
server), and two worker "machines" with their own queues, node names and local disks.

A dozen jobs of every kind go in through the API (and the admin, for a purge); each runs exactly
once, on the worker that consumes its queue, and every file they write is an object in the bucket,
none under any machine's media folder. Runs in .ci/run's PostgreSQL + Redis pass; on the embedded
defaults (SQLite, filesystem broker) there is no shared database or broker to spread work over.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from albums.models import Album, ThumbnailJob
from albums.services import store_image
from generation.models import GenerationJob, SetRun
from imagineer.celery import queue_for_task
from imagineer.ops.models import BugReport, DiskSnapshot, PurgeRun, RetentionPolicy, RetentionTarget
from imagineer.ops.services.retention.targets import file_fields
from labeling.models import LabelingRun
from tests.assertions import files_under
from tests.deploy.s3_bucket import SECRET_ACCESS_KEY
from tests.factories import AlbumFactory, scene_png
from tests.processes import celery_worker
from tests.training.helpers import QUICK
from tests.training.scraping.helpers import TEST_SCRAPING_CONFIG, photo
from tests.training.scraping.local_site import LocalSite
from training.models import ScrapeJob, TrainingRun

_DATABASE = settings.DATABASES["default"]["ENGINE"]
PRODUCTION_SHAPE = _DATABASE.endswith("postgresql") and settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not PRODUCTION_SHAPE,
        reason="needs the production shape: DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://… "
        "(.ci/run's second pass sets both)",
    ),
]

# The two groups of docs/deployment/CELERY.md, as node names of two machines.
MACHINES = {
    "gpu0@gpu-machine": "generation,training",
    "cpu@cpu-machine": "default,labeling,maintenance,scraping",
}
TIMEOUT_SECONDS = 240


def _node_for(job) -> str:
    queue = queue_for_task(type(job).task_name)
    return next(node for node, queues in MACHINES.items() if queue in queues.split(","))


def _start_workers(stack: ExitStack, tmp_path: Path, bucket) -> dict[str, object]:
    """Both workers, started side by side: each with its own media, scratch and training folders."""
    workers = {}
    for node, queues in MACHINES.items():
        machine = tmp_path / node.split("@")[1]
        (machine / "media").mkdir(parents=True)
        workers[node] = celery_worker(
            queues=queues,
            hostname=node,
            media_root=machine / "media",
            extra_env={
                **bucket.env,
                "IMAGINEER_SCRATCH_DIR": str(machine / "scratch"),
                "IMAGINEER_TRAINING_DIR": str(machine / "training"),
            },
        )
    with ThreadPoolExecutor(len(workers)) as pool:
        ready = {node: pool.submit(stack.enter_context, worker) for node, worker in workers.items()}
    return {node: future.result() for node, future in ready.items()}


def _all_final(started: list, deadline: float, workers) -> None:
    pending = list(started)
    while pending:
        assert time.monotonic() < deadline, (
            [f"{type(j).__name__} #{j.pk} {j.status}" for j in pending],
            {node: w.text[-2500:] for node, w in workers.items()},
        )
        time.sleep(0.5)
        for job in list(pending):
            job.refresh_from_db()
            if job.is_final:
                pending.remove(job)


def _stored_names() -> set[str]:
    """Every media name some row refers to (images, thumbnails, LoRAs, logs, checkpoints ...)."""
    names: set[str] = set()
    for model, field in file_fields():
        names.update(n for n in model._base_manager.values_list(field, flat=True) if n)
    return names


@dataclass
class World:
    """What the jobs work on, stored (by this web process) before any worker runs."""

    lora: object
    training_album: Album
    label_album: Album
    template: Album
    screenshot: str
    policy: RetentionPolicy
    site: LocalSite


def _build_world(tiny_lora, captioned_album) -> World:
    label_album = AlbumFactory(name="To label")
    for size in ((200, 150), (210, 150)):
        store_image(io.BytesIO(scene_png(size)), album=label_album)
    template = Album.objects.create(
        name="Numbers",
        slug="numbers",
        is_set_template=True,
        template_items=[{"n": str(i)} for i in range(3)],
        prompt_template="number {n}",
    )
    screenshot = default_storage.save("bug_reports/old.png", ContentFile(b"p" * 40))
    report = BugReport.objects.create(report_id="bug_old", description="old", screenshot=screenshot)
    BugReport.objects.filter(pk=report.pk).update(created_at=timezone.now() - timedelta(days=365))
    site = LocalSite("127.0.0.1")
    site.page("/", '<img src="/a.jpg" alt="First"><img src="/b.jpg">')
    site.file("/a.jpg", photo(120))
    site.file("/b.jpg", photo(121))
    return World(
        lora=tiny_lora("uploaded", seed=3),
        training_album=captioned_album(4),
        label_album=label_album,
        template=template,
        screenshot=screenshot,
        policy=RetentionPolicy.objects.create(
            name="old bug reports", target=RetentionTarget.BUG_REPORTS, max_age_days=30
        ),
        site=site,
    )


def _accepted(response) -> int:
    assert response.status_code == 202, response.content[:500]
    return response.json()["id"]


def _push_jobs(api, admin_browser, world: World) -> list:
    """Eleven jobs of seven kinds through the API (a purge through the admin) and a disk snapshot."""
    generation = [
        _accepted(api.post("/api/generation/jobs/", {"prompt": f"kite {n}", "steps": 2, "seed": n}, format="json"))
        for n in range(3)
    ]
    with_lora = {"prompt": "kite", "steps": 2, "loras": [{"lora": world.lora.slug, "weight": 0.5}]}
    generation.append(_accepted(api.post("/api/generation/jobs/", with_lora, format="json")))
    set_run = _accepted(
        api.post(
            f"/api/albums/{world.template.pk}/generate/",
            {"theme": "t", "steps": 2, "width": 64, "height": 64, "batch_size": 2},
            format="json",
        )
    )
    training = _accepted(
        api.post("/api/training/runs/", {"name": "Kites", "albums": [world.training_album.pk], **QUICK}, format="json")
    )
    images = list(world.training_album.images.order_by("pk").values_list("pk", flat=True))
    thumbnails = [
        _accepted(api.post("/api/images/rebuild-thumbnails/", {"image_ids": part}, format="json"))
        for part in (images[:2], images[2:])
    ]
    labeling = _accepted(api.post(f"/api/albums/{world.label_album.pk}/label/", {"labeler": "nudenet"}, format="json"))
    scrape = _accepted(api.post("/api/training/scrapes/", {"url": world.site.url("/")}, format="json"))
    admin_browser.post("/admin/ops/retentionpolicy/", {"action": "run_now", "_selected_action": [world.policy.pk]})
    snapshot = api.post("/api/admin/disk-stats/refresh")
    assert snapshot.status_code == 202 and snapshot.json()["queued"], snapshot.content
    return [
        *GenerationJob.objects.filter(pk__in=generation),
        SetRun.objects.get(pk=set_run),
        TrainingRun.objects.get(pk=training),
        *ThumbnailJob.objects.filter(pk__in=thumbnails),
        LabelingRun.objects.get(pk=labeling),
        ScrapeJob.objects.get(pk=scrape),
        PurgeRun.objects.get(policy=world.policy),
    ]


def test_a_dozen_jobs_run_once_each_on_their_queues_worker_with_files_in_the_bucket(
    s3_media,
    tiny_model,
    tiny_lora,
    captioned_album,
    admin_client_api,
    admin_browser,
    runtime_config_file,
    tmp_path,
    media_root,
):
    api = admin_client_api
    runtime_config_file.write_text(
        yaml.safe_dump({"training": {"min_captioned_images": 4}, "scraping": TEST_SCRAPING_CONFIG})
    )
    world = _build_world(tiny_lora, captioned_album)
    with ExitStack() as stack:
        stack.callback(world.site.close)
        workers = _start_workers(stack, tmp_path, s3_media)
        started = _push_jobs(api, admin_browser, world)
        assert len(started) == 11  # with the disk snapshot: twelve pieces of work
        deadline = time.monotonic() + TIMEOUT_SECONDS
        _all_final(started, deadline, workers)
        while not DiskSnapshot.objects.exists():
            assert time.monotonic() < deadline, workers["cpu@cpu-machine"].text[-2500:]
            time.sleep(0.5)
    logs = {node: worker.text for node, worker in workers.items()}

    # Exactly once, on the machine whose worker consumes the job's queue.
    ran = {(type(j).__name__, j.pk): (j.status, j.attempts, j.worker, j.error_message[:300]) for j in started}
    assert ran == {key: ("succeeded", 1, _node_for(j), "") for key, j in zip(ran, started, strict=True)}, {
        node: text[-2500:] for node, text in logs.items()
    }
    for job in started:
        other = next(node for node in MACHINES if node != _node_for(job))
        assert job.celery_task_id in logs[_node_for(job)] and job.celery_task_id not in logs[other]
    assert not any("job.claim_skipped" in text for text in logs.values())  # no second delivery ran
    snapshot_received = "Task imagineer.ops.tasks.take_disk_snapshot["
    assert snapshot_received in logs["cpu@cpu-machine"] and snapshot_received not in logs["gpu0@gpu-machine"]
    assert DiskSnapshot.objects.count() == 1

    # Every file is an object in the bucket, and the bucket holds nothing no row refers to ...
    keys = s3_media.keys()
    assert _stored_names() == keys
    assert {name.split("/")[0] for name in keys} == {"images", "thumbnails", "loras", "training"}
    of_kind = {type(job): job for job in started}
    trained = TrainingRun.objects.select_related("lora").get(pk=of_kind[TrainingRun].pk)
    assert {trained.lora.file.name, trained.log_file.name} <= keys
    assert world.screenshot not in keys and not BugReport.objects.exists()  # the purge deleted the object
    assert SetRun.objects.get(pk=of_kind[SetRun].pk).output_album.album_images.count() == 3
    generated = GenerationJob.objects.get(pk=of_kind[GenerationJob].pk).images.get()
    served = api.get(f"/api/images/{generated.pk}/file/")
    assert b"".join(served.streaming_content) == s3_media.read(generated.file.name)
    log = api.get(f"/api/training/runs/{trained.pk}/logs/").json()
    assert any("Registered LoRA" in line for line in log["lines"])  # written on the GPU machine, read here

    # ... and none is on a local disk: not this process's media folder, not either machine's.
    machines = [tmp_path / node.split("@")[1] for node in MACHINES]
    assert files_under(media_root) == [] and all(files_under(machine / "media") == [] for machine in machines)
    # The GPU machine loaded the uploaded LoRA from a copy it fetched from the bucket.
    assert files_under(tmp_path / "gpu-machine" / "scratch") == [f"loras/{world.lora.sha256}.safetensors"]
    for text in logs.values():
        assert SECRET_ACCESS_KEY not in text
        assert all(str(machine) not in text for machine in machines)
