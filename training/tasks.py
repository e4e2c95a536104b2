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


@shared_task(bind=True, name="training.tasks.scrape_site")
def scrape_site(self, job_id: int) -> None:
    # Imported here: training workers never load the scraping stack (bs4, lxml, numpy, imagehash).
    from training.models import ScrapeJob
    from training.scraping.services import run_scrape_job

    run_job(ScrapeJob, job_id, run_scrape_job, task_id=self.request.id or "")
