"""Celery tasks of training: each job kind's task is declared once with job_task (imagineer.core.jobs).

Queues come from the explicit table in imagineer/celery.py: train_lora → training, scrape_site → scraping.
"""

from imagineer.core.jobs import job_task
from training.models import ScrapeJob, TrainingRun
from training.services import runs

train_lora = job_task(TrainingRun)(runs.run_training)


@job_task(ScrapeJob)
def scrape_site(job: ScrapeJob) -> None:
    """Crawl one site into a private album (training.services.scrapes, with the crawler in training.scraping)."""
    # Imported here: training workers never load the scraping stack (bs4, lxml, numpy, imagehash).
    from training.services.scrapes import run_scrape_job

    run_scrape_job(job)
