"""Maintenance tasks (queue `maintenance`): thin wrappers over imagineer.ops.services.retention and .disk."""

from celery import shared_task

from imagineer.core.jobs import job_task, run_job
from imagineer.ops.models import PurgeRun
from imagineer.ops.services import disk, retention

# One purge run (a job row made by "run now", a schedule or a retry).
run_purge = job_task(PurgeRun)(retention.run_purge)


@shared_task(bind=True, name="imagineer.ops.tasks.run_retention_policy")
def run_retention_policy(self, policy_id: int) -> None:
    """Beat entry of a policy's PeriodicTask: a purge run for the policy, run here and now."""
    run = retention.start_scheduled_purge(policy_id)
    if run is not None:
        run_job(PurgeRun, run.pk, retention.run_purge, task_id=self.request.id or "")


@shared_task(name="imagineer.ops.tasks.take_disk_snapshot")
def take_disk_snapshot() -> int:
    """Beat, every 6 h by default: walk the monitored directories, store a snapshot, send alerts."""
    return disk.take_snapshot().pk
