from celery import shared_task

from imagineer.core.jobs import run_job
from legacy import services
from legacy.models import ImportRun


@shared_task(bind=True, name="legacy.tasks.run_import")
def run_import(self, run_id: int) -> None:
    """A retried import run (admin "Retry"); the command runs new ones in its own process."""
    run_job(ImportRun, run_id, services.run_import, task_id=self.request.id or "")
