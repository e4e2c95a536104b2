"""Celery tasks of labeling: each job kind's task is declared once with job_task (imagineer.core.jobs)."""

from imagineer.core.jobs import job_task
from labeling import services
from labeling.models import LabelingRun

run_labeling_run = job_task(LabelingRun)(services.run_labeling_run)
