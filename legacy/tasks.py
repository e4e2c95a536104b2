"""Celery tasks of legacy: a retried import run (admin "Retry"); the command runs new ones in its own process."""

from imagineer.core.jobs import job_task
from legacy import services
from legacy.models import ImportRun

run_import = job_task(ImportRun)(services.run_import)
