from celery import shared_task

from albums import services
from albums.models import ThumbnailJob
from imagineer.core.jobs import run_job


@shared_task(bind=True, name="albums.tasks.rebuild_thumbnails")
def rebuild_thumbnails(self, job_id: int) -> None:
    run_job(ThumbnailJob, job_id, services.rebuild_thumbnails, task_id=self.request.id or "")
