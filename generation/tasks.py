"""Celery tasks of generation: each job kind's task is declared once with job_task (imagineer.core.jobs)."""

from generation import services
from generation.models import GenerationJob, SetRun
from imagineer.core.jobs import job_task

run_generation_job = job_task(GenerationJob)(services.run_generation_job)
run_set_run = job_task(SetRun)(services.run_set_run)
