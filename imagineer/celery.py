"""The Celery app `imagineer`: queues, routes, per-queue time limits, beat schedule.

Run a worker with `celery -A imagineer worker` (add `-Q generation` etc. to give a machine one
kind of work). Job state lives in job rows (imagineer.core.jobs); no result backend is used.
"""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagineer.settings")

QUEUES = ("default", "generation", "training", "scraping", "labeling", "maintenance")

# Task name patterns → queue. Anything unrouted goes to `default`.
TASK_ROUTES = {
    "generation.tasks.*": {"queue": "generation"},
    "training.tasks.train_*": {"queue": "training"},
    "training.tasks.scrape_*": {"queue": "scraping"},
    "labeling.tasks.*": {"queue": "labeling"},
    "imagineer.core.tasks.*": {"queue": "maintenance"},
    "imagineer.ops.tasks.*": {"queue": "maintenance"},
    "albums.tasks.*": {"queue": "default"},
    "legacy.tasks.*": {"queue": "maintenance"},
}

app = Celery("imagineer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes=TASK_ROUTES,
    task_acks_late=True,
    # A message whose worker died is redelivered; claim_job makes the second delivery a no-op
    # when the first one had already claimed the job.
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    beat_schedule={
        "reap-stale-jobs": {"task": "imagineer.core.tasks.reap_stale_jobs", "schedule": 60.0},
    },
)


def queue_for_task(task_name: str) -> str:
    """The queue a task is routed to (same glob rules as Celery's task_routes)."""
    from fnmatch import fnmatchcase

    for pattern, route in TASK_ROUTES.items():
        if fnmatchcase(task_name, pattern):
            return route["queue"]
    return "default"


class QueueTimeLimits:
    """task_annotations: each task gets the (soft, hard) time limit of the queue it is routed to."""

    def annotate(self, task):
        from django.conf import settings

        soft, hard = settings.CELERY_QUEUE_TIME_LIMITS[queue_for_task(task.name)]
        return {"soft_time_limit": soft, "time_limit": hard}


app.conf.task_annotations = [QueueTimeLimits()]
app.autodiscover_tasks(lambda: ["imagineer.core", "albums", "generation", "training", "labeling", "legacy"])


@signals.worker_init.connect
def _refuse_unsafe_production(**kwargs) -> None:
    from imagineer.core.checks import refuse_unsafe_production

    refuse_unsafe_production()


@signals.task_prerun.connect
def _bind_task_context(task=None, task_id=None, **kwargs) -> None:
    """Every log line of a task carries its name, id and the request id that enqueued it."""
    import structlog

    from imagineer.core.middleware import bind_request_id

    structlog.contextvars.clear_contextvars()
    request_id = (getattr(task.request, "imagineer_request_id", None) or "") if task else ""
    if not request_id and task is not None:
        request_id = (task.request.headers or {}).get("imagineer_request_id", "") if task.request.headers else ""
    bind_request_id(request_id or (task_id or ""))
    structlog.contextvars.bind_contextvars(task_name=getattr(task, "name", ""), task_id=task_id)


@signals.task_postrun.connect
def _clear_task_context(**kwargs) -> None:
    import structlog

    structlog.contextvars.clear_contextvars()
