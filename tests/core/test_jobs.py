"""The job lifecycle, exercised on the first concrete job (thumbnail rebuilds)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from albums import services
from albums.models import ThumbnailJob
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.assertions import assert_envelope
from tests.factories import make_image, make_job_row

pytestmark = pytest.mark.django_db


def test_only_one_claim_wins():
    job = ThumbnailJob.objects.create()
    first = jobs.claim_job(ThumbnailJob, job.pk, task_id="t1")
    second = jobs.claim_job(ThumbnailJob, job.pk, task_id="t2")  # a redelivered message
    assert first is not None and first.status == JobStatus.RUNNING and first.attempts == 1
    assert second is None
    job.refresh_from_db()
    assert job.celery_task_id == "t1" and job.worker and job.started_at and job.heartbeat_at


def test_claim_of_missing_or_cancelled_job_is_none():
    assert jobs.claim_job(ThumbnailJob, 123456) is None
    job = ThumbnailJob.objects.create(status=JobStatus.CANCELLED)
    assert jobs.claim_job(ThumbnailJob, job.pk) is None


def test_run_job_success_records_progress_and_timings():
    image = make_image()
    job = ThumbnailJob.objects.create(image_ids=[image.pk], progress_total=1)
    old_thumbnail = image.thumbnail.name
    jobs.run_job(ThumbnailJob, job.pk, services.rebuild_thumbnails)
    job.refresh_from_db()
    image.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.progress_current, job.progress_total, job.rebuilt_count) == (1, 1, 1)
    assert job.progress == 1.0 and job.finished_at >= job.started_at
    assert image.thumbnail.name != old_thumbnail and image.thumbnail.storage.exists(image.thumbnail.name)
    assert not image.thumbnail.storage.exists(old_thumbnail)


def test_one_bad_image_does_not_stop_the_job():
    good = make_image()
    job = ThumbnailJob.objects.create(image_ids=[998877, good.pk], progress_total=2)
    jobs.run_job(ThumbnailJob, job.pk, services.rebuild_thumbnails)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.rebuilt_count, job.failed_count) == (1, 1)
    assert job.failures[0]["image_id"] == 998877 and "no longer exists" in job.failures[0]["error"]


def test_exception_fails_the_job_with_a_readable_message(settings):
    job = ThumbnailJob.objects.create()

    def explode(job):
        raise ValueError(f"cannot read {settings.MEDIA_ROOT}/x.png")

    jobs.run_job(ThumbnailJob, job.pk, explode)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith("ValueError: cannot read")
    assert str(settings.MEDIA_ROOT) not in job.error_message


def test_cancel_queued_job_is_immediate():
    job = ThumbnailJob.objects.create()
    jobs.cancel_job(job)
    assert job.status == JobStatus.CANCELLED and job.finished_at
    assert jobs.claim_job(ThumbnailJob, job.pk) is None


def test_cancel_running_job_stops_at_next_progress():
    job = ThumbnailJob.objects.create()
    seen = []

    def work(job):
        jobs.record_progress(job, 1, 3)
        jobs.cancel_job(job)  # an operator, meanwhile
        seen.append("before")
        jobs.record_progress(job, 2, 3)
        seen.append("after")

    jobs.run_job(ThumbnailJob, job.pk, work)
    job.refresh_from_db()
    assert seen == ["before"]
    assert job.status == JobStatus.CANCELLED and job.error_message == "Cancelled by an operator."


def test_finished_job_cannot_be_cancelled_and_completion_never_overwrites_cancel():
    job = ThumbnailJob.objects.create(status=JobStatus.SUCCEEDED)
    with pytest.raises(jobs.JobNotCancellable):
        jobs.cancel_job(job)
    running = jobs.claim_job(ThumbnailJob, ThumbnailJob.objects.create().pk)
    ThumbnailJob.objects.filter(pk=running.pk).update(status=JobStatus.CANCELLED)
    assert jobs.finish_job(running, JobStatus.SUCCEEDED) is False
    assert running.status == JobStatus.CANCELLED


def test_reaper_fails_jobs_whose_heartbeat_stopped():
    stale = jobs.claim_job(ThumbnailJob, ThumbnailJob.objects.create().pk)
    fresh = jobs.claim_job(ThumbnailJob, ThumbnailJob.objects.create().pk)
    ThumbnailJob.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=30))
    assert jobs.reap_stale_jobs(timedelta(minutes=5)) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == JobStatus.FAILED and "stopped responding" in stale.error_message
    assert fresh.status == JobStatus.RUNNING
    assert jobs.reap_stale_jobs(timedelta(minutes=5)) == 0  # idempotent


def test_retry_requeues_failed_job(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "celery.app.base.Celery.send_task", lambda self, name, args=None, **kw: sent.append((name, args)) or _Result()
    )
    job = ThumbnailJob.objects.create(status=JobStatus.FAILED, error_message="x")
    with django_capture_on_commit_callbacks(execute=True):
        jobs.retry_job(job)
    assert job.status == JobStatus.QUEUED and job.error_message == ""
    assert sent == [("albums.tasks.rebuild_thumbnails", [job.pk])]
    with pytest.raises(jobs.JobNotRetryable):
        jobs.retry_job(ThumbnailJob.objects.create(status=JobStatus.RUNNING))


class _Result:
    id = "fake-task-id"


def test_rebuild_api_queues_job_and_jobs_api_follows_it(admin_client_api, user_client_api):
    image = make_image()
    response = admin_client_api.post("/api/images/rebuild-thumbnails/", {"image_ids": [image.pk]})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["image_ids"] == [image.pk]
    detail = admin_client_api.get(f"/api/jobs/thumbnails/{body['id']}/").json()
    assert detail["progress_total"] == 1
    cancelled = admin_client_api.post(f"/api/jobs/thumbnails/{body['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert_envelope(admin_client_api.post(f"/api/jobs/thumbnails/{body['id']}/cancel/"), 409, "job_not_cancellable")
    assert_envelope(user_client_api.get(f"/api/jobs/thumbnails/{body['id']}/"), 403)


def test_rebuild_api_refuses_unknown_images(admin_client_api):
    assert_envelope(
        admin_client_api.post("/api/images/rebuild-thumbnails/", {"image_ids": [5555]}), 400, "unknown_images"
    )
    assert_envelope(admin_client_api.post("/api/images/rebuild-thumbnails/", {}), 400, "validation_error")
    assert ThumbnailJob.objects.count() == 0


# --- Writes while a job runs: update_job -----------------------------------------------------


# Each job kind with the columns its work writes to its own row while it runs (what a reaped
# worker could otherwise still write over its retry).
LATE_WRITES = [
    ("ThumbnailJob", {"rebuilt_count": 7, "failed_count": 3, "failures": [{"image_id": 1, "error": "late"}]}),
    ("GenerationJob", {"load_seconds": 1.25, "inference_seconds": 9.5, "save_seconds": 0.5}),
    ("SetRun", {"completed_items": 5, "failed_items": 2, "failures": [{"row": 1, "error": "late"}]}),
    ("LabelingRun", {"succeeded_count": 4, "failed_count": 1, "input_tokens": 100, "output_tokens": 50}),
    ("ImportRun", {"imported_count": 8, "already_present_count": 2, "skipped": [{"path": "a", "reason": "late"}]}),
    (
        "TrainingRun",
        {
            "captioned_images": 20,
            "missing_files": 1,
            "trainer_pid": 4242,
            "prepare_seconds": 1.5,
            "train_seconds": 2.5,
            "final_loss": 0.5,
            "log_file": "training/logs/late.log",
        },
    ),
    ("ScrapeJob", {"pages_fetched": 3, "images_kept": 9, "rejected": {"too_small": 2}}),
    ("PurgeRun", {"files_removed": 11, "rows_removed": 4, "bytes_freed": 4096, "details": {"late": True}}),
]


@pytest.mark.parametrize(("label", "fields"), LATE_WRITES, ids=[label for label, _ in LATE_WRITES])
def test_a_reaped_attempts_late_write_leaves_the_retrys_row_alone(label, fields, django_capture_on_commit_callbacks):
    job = make_job_row(label)
    model = type(job)
    first_attempt = jobs.claim_job(model, job.pk)
    model.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert jobs.reap_stale_jobs(timedelta(minutes=1)) >= 1
    with django_capture_on_commit_callbacks(execute=False):  # the re-send itself is not the point here
        jobs.retry_job(model.objects.get(pk=job.pk))
    retry = jobs.claim_job(model, job.pk)
    assert retry.attempts == first_attempt.attempts + 1
    before = model.objects.filter(pk=job.pk).values(*fields).get()

    with pytest.raises(jobs.JobLost):
        jobs.update_job(first_attempt, **fields)

    assert model.objects.filter(pk=job.pk).values(*fields).get() == before
    jobs.update_job(retry, **fields)  # the retry's own write goes through
    assert model.objects.filter(pk=job.pk).values(*fields).get() == fields


def test_update_job_reads_expressions_back():
    from django.db.models import F

    job = jobs.claim_job(ThumbnailJob, ThumbnailJob.objects.create().pk)
    jobs.update_job(job, rebuilt_count=F("rebuilt_count") + 1)
    jobs.update_job(job, rebuilt_count=F("rebuilt_count") + 1, failures=[{"image_id": 3, "error": "x"}])
    assert job.rebuilt_count == 2 and job.failures == [{"image_id": 3, "error": "x"}]
    assert ThumbnailJob.objects.get(pk=job.pk).rebuilt_count == 2


def test_update_job_refuses_a_job_that_is_not_running():
    job = ThumbnailJob.objects.create()  # queued: nobody holds a claim
    with pytest.raises(jobs.JobLost):
        jobs.update_job(job, rebuilt_count=5)
    assert ThumbnailJob.objects.get(pk=job.pk).rebuilt_count == 0


def test_describe_failure_hides_any_absolute_path():
    message = jobs.describe_failure(OSError("cannot open /tmp/imagineer-loras/abc.safetensors"))
    assert "/tmp" not in message and "<path>" in message
