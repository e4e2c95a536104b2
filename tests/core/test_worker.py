"""A real Celery worker process runs a job end to end (filesystem broker on SQLite, Redis on PostgreSQL)."""

import pytest
from django.core.files.storage import default_storage

from albums import services
from albums.models import ThumbnailJob
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.factories import make_image
from tests.processes import celery_worker, wait_for_final_job

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_thumbnail_job_runs_on_a_real_worker(media_root):
    images = [make_image(), make_image()]
    old_thumbnails = [image.thumbnail.name for image in images]
    with celery_worker(media_root=media_root) as worker:
        job = services.start_thumbnail_rebuild([image.pk for image in images])
        job = wait_for_final_job(job, worker=worker)
        assert job.status == JobStatus.SUCCEEDED, (job.error_message, worker.text[-2000:])
    assert job.rebuilt_count == 2 and job.progress_current == 2
    assert job.celery_task_id and job.worker and job.attempts == 1
    for image, old in zip(images, old_thumbnails, strict=True):
        image.refresh_from_db()
        assert image.thumbnail.name != old
        assert default_storage.exists(image.thumbnail.name)
        assert not default_storage.exists(old)
    # The worker's log lines carry the job's request id and never a media path.
    assert job.request_id in worker.text
    assert str(media_root) not in worker.text


def test_cancelled_job_is_not_run_by_the_worker(media_root):
    image = make_image()
    job = ThumbnailJob.objects.create(image_ids=[image.pk], status=JobStatus.CANCELLED)
    with celery_worker(media_root=media_root) as worker:
        jobs.enqueue_job(job)  # e.g. a message redelivered after an operator cancelled the job
        assert worker.wait_for("job.claim_skipped", timeout=60), worker.text[-2000:]
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.started_at is None
