from celery import shared_task

from imagineer.core import jobs


@shared_task(name="imagineer.core.tasks.reap_stale_jobs")
def reap_stale_jobs() -> int:
    """Beat, every IMAGINEER_JOB_SWEEP_SECONDS: fail running jobs whose worker stopped sending heartbeats."""
    return jobs.reap_stale_jobs()


@shared_task(name="imagineer.core.tasks.resend_lost_jobs")
def resend_lost_jobs() -> tuple[int, int]:
    """Beat, every IMAGINEER_JOB_SWEEP_SECONDS: send again queued jobs whose message no live worker holds."""
    return jobs.resend_lost_jobs()
