"""Celery tasks of albums: each job kind's task is declared once with job_task (imagineer.core.jobs)."""

from albums import services
from albums.models import ThumbnailJob
from imagineer.core.jobs import job_task

rebuild_thumbnails = job_task(ThumbnailJob)(services.rebuild_thumbnails)
