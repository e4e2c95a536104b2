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
# Queues whose jobs run a diffusion pipeline on the GPU: a worker of their own, one pool process
# (one GPU runs one pipeline; a second process would hold a second copy of the model).
GPU_QUEUES = ("generation", "training")

# Every task by its exact name → its queue. A task missing here goes to `default`, and a test
# (tests/core/test_celery_config.py) fails for any registered task this table does not name, so
# renaming or adding a task cannot silently move work to another queue.
TASK_QUEUES = {
    "albums.tasks.rebuild_thumbnails": "default",
    "generation.tasks.run_generation_job": "generation",
    "generation.tasks.run_set_run": "generation",
    "training.tasks.train_lora": "training",
    "training.tasks.scrape_site": "scraping",
    "labeling.tasks.run_labeling_run": "labeling",
    "labeling.tasks.run_nsfw_check": "labeling",
    "labeling.tasks.sweep_nsfw_checks": "maintenance",
    "legacy.tasks.run_import": "maintenance",
    "imagineer.core.tasks.reap_stale_jobs": "maintenance",
    "imagineer.core.tasks.resend_lost_jobs": "maintenance",
    "imagineer.ops.tasks.run_purge": "maintenance",
    "imagineer.ops.tasks.run_retention_policy": "maintenance",
    "imagineer.ops.tasks.take_disk_snapshot": "maintenance",
}
TASK_ROUTES = {name: {"queue": queue} for name, queue in TASK_QUEUES.items()}

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
    # beat_schedule: CELERY_BEAT_SCHEDULE in settings (its interval is a setting).
)


def queue_for_task(task_name: str) -> str:
    """The queue a task is routed to (the TASK_QUEUES table; `default` for a task it does not name)."""
    return TASK_QUEUES.get(task_name, "default")


class QueueTimeLimits:
    """task_annotations: each task gets the (soft, hard) time limit of the queue it is routed to."""

    def annotate(self, task):
        from django.conf import settings

        soft, hard = settings.CELERY_QUEUE_TIME_LIMITS[queue_for_task(task.name)]
        return {"soft_time_limit": soft, "time_limit": hard}


app.conf.task_annotations = [QueueTimeLimits()]
app.autodiscover_tasks(
    lambda: ["imagineer.core", "albums", "generation", "training", "labeling", "legacy", "imagineer.ops"]
)


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_unsafe_production(**kwargs) -> None:
    """A worker or beat on unsafe production settings does not start.

    Celery logs and swallows an Exception raised by a signal handler (the process would go on), so
    the refusal is a SystemExit, which it lets through.
    """
    from django.core.exceptions import ImproperlyConfigured

    from imagineer.core.checks import refuse_unsafe_production

    try:
        refuse_unsafe_production()
    except ImproperlyConfigured as exc:
        import sys

        print(exc, file=sys.stderr)
        raise SystemExit(1) from exc


@signals.before_task_publish.connect
def _propagate_request_id(headers=None, **kwargs) -> None:
    """Any task sent while a request (or a task) is served carries that request id in its headers."""
    from imagineer.core.request_context import TASK_REQUEST_ID_HEADER, bound_request_id

    if headers is not None and not headers.get(TASK_REQUEST_ID_HEADER):
        request_id = bound_request_id()
        if request_id:
            headers[TASK_REQUEST_ID_HEADER] = request_id


def _task_request_id(task) -> str:
    """The request id a task's message carries (a custom header: an attribute of task.request)."""
    from imagineer.core.request_context import TASK_REQUEST_ID_HEADER

    request = getattr(task, "request", None)
    if request is None:
        return ""
    value = getattr(request, TASK_REQUEST_ID_HEADER, None) or (request.headers or {}).get(TASK_REQUEST_ID_HEADER)
    return str(value or "")


# What was bound before a task started, restored after it: an eagerly applied task (task.apply()
# inside a request or a test) must not wipe its caller's request id. In a worker it is empty.
_outer_log_context: dict[str, tuple[dict, str]] = {}


@signals.task_prerun.connect
def _bind_task_context(task=None, task_id=None, **kwargs) -> None:
    """Every log line of a task carries its name, id and the request id that enqueued it.

    The request id comes from the message header; a task run eagerly keeps its caller's; a task
    sent outside any request has none, and its own task id stands in. The job id is bound where
    the job is claimed (imagineer.core.jobs.run_job).
    """
    import structlog

    from imagineer.core.request_context import bind_request_id, bound_request_id, clear_request_context

    outer_request_id = bound_request_id()
    _outer_log_context[task_id or ""] = (structlog.contextvars.get_contextvars(), outer_request_id)
    clear_request_context()
    bind_request_id(_task_request_id(task) or outer_request_id or (task_id or ""))
    structlog.contextvars.bind_contextvars(task_name=getattr(task, "name", ""), task_id=task_id)


@signals.task_postrun.connect
def _clear_task_context(task_id=None, **kwargs) -> None:
    import structlog

    from imagineer.core.request_context import bind_request_id, clear_request_context

    outer_fields, outer_request_id = _outer_log_context.pop(task_id or "", ({}, ""))
    clear_request_context()
    if outer_request_id:
        bind_request_id(outer_request_id)
    structlog.contextvars.bind_contextvars(**outer_fields)
