from celery import shared_task

from imagineer.core import jobs


@shared_task(name="imagineer.core.tasks.reap_stale_jobs")
def reap_stale_jobs() -> int:
    """Beat, every minute: fail running jobs whose worker stopped sending heartbeats."""
    return jobs.reap_stale_jobs()
