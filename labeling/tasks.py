"""Celery tasks of labeling: each job kind's task is declared once with job_task (imagineer.core.jobs)."""

from celery import shared_task

from imagineer.core.jobs import job_task
from labeling import autocheck, services
from labeling.models import LabelingRun, NsfwCheckJob

run_labeling_run = job_task(LabelingRun)(services.run_labeling_run)
run_nsfw_check = job_task(NsfwCheckJob)(autocheck.run_nsfw_check)


@shared_task(name="labeling.tasks.sweep_nsfw_checks")
def sweep_nsfw_checks() -> tuple[int, int]:
    """Beat, every IMAGINEER_JOB_SWEEP_SECONDS: check again pending images whose check job was lost."""
    return autocheck.sweep_nsfw_checks()
