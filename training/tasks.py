"""Thin Celery tasks: each runs one job through the shared lifecycle (imagineer.core.jobs).

Task names decide the queue (imagineer/celery.py): `train_*` → training, `scrape_*` → scraping.
"""

from celery import shared_task

from imagineer.core.jobs import run_job
from training import runs
from training.models import TrainingRun


@shared_task(bind=True, name="training.tasks.train_lora")
def train_lora(self, run_id: int) -> None:
    run_job(TrainingRun, run_id, runs.run_training, task_id=self.request.id or "")
