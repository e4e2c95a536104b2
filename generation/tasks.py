from celery import shared_task

from generation import services
from generation.models import GenerationJob, SetRun
from imagineer.core.jobs import run_job


@shared_task(bind=True, name="generation.tasks.run_generation_job")
def run_generation_job(self, job_id: int) -> None:
    run_job(GenerationJob, job_id, services.run_generation_job, task_id=self.request.id or "")


@shared_task(bind=True, name="generation.tasks.run_set_run")
def run_set_run(self, run_id: int) -> None:
    run_job(SetRun, run_id, services.run_set_run, task_id=self.request.id or "")
