from celery import shared_task

from imagineer.core.jobs import run_job
from labeling import services
from labeling.models import LabelingRun


@shared_task(bind=True, name="labeling.tasks.run_labeling_run")
def run_labeling_run(self, run_id: int) -> None:
    run_job(LabelingRun, run_id, services.run_labeling_run, task_id=self.request.id or "")
