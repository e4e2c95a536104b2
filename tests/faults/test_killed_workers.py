"""A worker killed with SIGKILL mid-job: the job ends in a final state with a reason, nothing
half-written stays, the redelivered message does not run it twice, and its retry works.

The package shares one worker (tests/faults/conftest.py); a test that kills it starts it again.
"""

from pathlib import Path

import psutil
import pytest
from django.conf import settings

from albums.models import Image, ThumbnailJob
from generation.models import GenerationJob, Lora
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from legacy import services as legacy_services
from legacy.models import ImportRun, LegacyAsset
from tests.faults.helpers import media_and_rows_agree, reap_when_stale, wait_final, wait_until
from tests.faults.workers import LEGACY_BATCH, wait_for_event
from tests.legacy.helpers import png
from tests.training.helpers import QUICK
from training.models import TrainingRun

# One xdist process runs them all (with --dist loadgroup): they share one worker, started once.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("faults")]


def test_generation_whose_pool_process_is_killed_is_redelivered_once_reaped_and_retried(
    worker, tiny_model, user_client_api, media_root
):
    """The OOM killer's case: SIGKILL to the pool process (the one holding the model), the worker's
    main process lives on, sees the pool process lost and, with late acks and
    task_reject_on_worker_lost, puts the message back in the queue at once."""
    steps = 30
    body = user_client_api.post(
        "/api/generation/jobs/", {"prompt": "a kite", "steps": steps, "count": 2, "seed": 11}
    ).json()
    job = GenerationJob.objects.get(pk=body["id"])

    def denoising_the_second_image():
        job.refresh_from_db()
        return job.images.count() == 1 and steps < job.progress_current < 2 * steps - 3

    wait_until(denoising_the_second_image, 120, lambda: f"never caught mid-run:\n{worker.watcher.text[-3000:]}")
    worker.kill_pool()

    # The redelivered message reaches the replacement pool process, whose claim finds the job running.
    wait_for_event(worker.watcher, "job.claim_skipped", 60, job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.images.count()) == (JobStatus.RUNNING, 1, 1)

    reap_when_stale(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith("The worker stopped responding") and "Retry the job" in job.error_message
    assert media_and_rows_agree(media_root) == (set(), set())

    jobs.retry_job(job)
    wait_final(job, worker)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), job.error_message
    # The first attempt's image is the retry's first (same seed, same bytes): not made twice.
    assert job.images.count() == Image.objects.count() == 2
    assert media_and_rows_agree(media_root) == (set(), set())


def trainer_processes(run) -> list[psutil.Process]:
    """Trainers of this run still alive (a zombie is dead: only its exit status is left)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "training.trainer" in cmdline and f"run-{run.pk}-attempt-" in cmdline:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def test_training_whose_worker_group_is_killed_stops_its_trainer_and_its_retry_trains(
    worker, tiny_model, captioned_album, admin_client_api, media_root
):
    """SIGKILL to the worker's process group (main and pool process): the trainer, in a session of
    its own, survives that kill and must notice its supervisor is gone and exit by itself."""
    album = captioned_album(4)
    steps = 60  # about 3 s on the CI machine: the progress row is written once a second
    body = admin_client_api.post(
        "/api/training/runs/", {"name": "Kites", "albums": [album.pk], **QUICK, "steps": steps}, format="json"
    ).json()
    run = TrainingRun.objects.get(pk=body["id"])

    def training():
        run.refresh_from_db()
        return run.trainer_pid and 1 <= run.progress_current < steps - 10

    wait_until(training, 180, lambda: f"never caught training:\n{worker.watcher.text[-3000:]}")
    assert trainer_processes(run), "the trainer is not running"
    worker.kill_group()

    wait_until(lambda: not trainer_processes(run), 30, "the trainer outlived its worker")
    scratch = Path(settings.IMAGINEER_TRAINING_DIR) / "scratch" / f"run-{run.pk}-attempt-1"
    assert scratch.is_dir()  # nobody was left to remove it

    worker.start()
    reap_when_stale(run)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.error_message.startswith("The worker stopped responding")

    assert admin_client_api.post(f"/api/training/runs/{run.pk}/retry/").status_code == 202
    wait_final(run, worker)
    assert (run.status, run.attempts, run.progress_current) == (JobStatus.SUCCEEDED, 2, steps), run.error_message
    assert Lora.objects.filter(source_id=run.pk).count() == 1
    assert not trainer_processes(run)
    # The retry removes what the killed attempt left in scratch, not only its own folder.
    assert not list(scratch.parent.glob(f"run-{run.pk}-attempt-*"))
    assert media_and_rows_agree(media_root) == (set(), set())


def legacy_tree(root: Path, count: int) -> Path:
    outputs = root / "outputs"
    for i in range(count):
        png(outputs / "card_deck_faults" / f"20250101_0000{i % 60:02d}_card_{i}.png", 2000 + i, size=(96, 96))
    return outputs


def staged_not_written() -> int:
    """Legacy media files whose rows are not written yet (staged by the batch in progress)."""
    legacy = Path(settings.MEDIA_ROOT) / "legacy"
    files = sum(1 for p in legacy.rglob("*") if p.is_file() and not p.name.startswith(".")) if legacy.is_dir() else 0
    return files - Image.objects.filter(file__startswith="legacy/").count()


def test_legacy_import_retried_on_celery_whose_worker_is_lost_leaves_nothing_behind(worker, tmp_path, media_root):
    """The whole process tree SIGKILLed (a lost machine, a cgroup killed) while a retried import
    has a batch staged; before the next retry part of the tree is deleted, so the staged files of
    the killed batch are not written again by that retry: it has to clear them up."""
    outputs = legacy_tree(tmp_path, 150)
    run = legacy_services.start_import_run(
        legacy_services.ImportOptions(outputs=outputs), manifest_path=tmp_path / "manifest.yaml"
    )
    ImportRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, error_message="Media was not writable.")
    jobs.retry_job(run)  # the admin's Retry: legacy.tasks.run_import on the maintenance queue

    def mid_batch():
        running = ImportRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).exists()
        return running and LegacyAsset.objects.count() >= LEGACY_BATCH and staged_not_written() > 0

    wait_until(mid_batch, 120, lambda: f"never caught mid-batch:\n{worker.watcher.text[-3000:]}", interval=0.005)
    worker.kill_tree()
    leftovers = staged_not_written()
    imported = set(LegacyAsset.objects.values_list("source_path", flat=True))
    assert leftovers > 0 and 0 < len(imported) < 150, (leftovers, len(imported))

    worker.start()
    reap_when_stale(run)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.error_message.startswith("The worker stopped responding")

    remaining = [p for p in outputs.rglob("*.png") if str(p) in imported]
    for path in outputs.rglob("*.png"):
        if str(path) not in imported:
            path.unlink()  # the operator cleaned up the outputs folder meanwhile
    jobs.retry_job(run)
    wait_final(run, worker)
    assert (run.status, run.attempts) == (JobStatus.SUCCEEDED, 2), run.error_message
    assert Image.objects.count() == len(remaining) == LegacyAsset.objects.count()
    for thumbnails in ThumbnailJob.objects.all():  # queued by the import's end; they write media too
        assert wait_final(thumbnails, worker).status == JobStatus.SUCCEEDED
    assert all(image.albums.exists() for image in Image.objects.all())
    assert staged_not_written() == 0
    assert media_and_rows_agree(media_root) == (set(), set())
