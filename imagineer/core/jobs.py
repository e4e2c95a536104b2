"""The job lifecycle shared by every kind of background job.

queued --claim--> running --finish--> succeeded | failed
   |                 |--cancel (requested, seen at the next progress report)--> cancelled
   '--cancel--> cancelled
running with a stale heartbeat --reap--> failed ("worker stopped ...")
queued, message held by no live worker --sweep--> queued (sent again) | failed after N re-sends

Every transition is a conditional UPDATE (`WHERE status = <expected>`), so it happens once even
when Celery redelivers a message (late acks) or two workers race for it. Reaped jobs are marked
failed with a reason rather than requeued: a job that died mid-way may have half-done work that
only its own retry logic knows how to resume; `retry_job` requeues explicitly.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import structlog
from celery import Task, current_app, shared_task
from celery.exceptions import Reject
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from imagineer.celery import queue_for_task
from imagineer.core.errors import ConflictError, ServiceUnavailableError
from imagineer.core.logging import get_logger
from imagineer.core.models import FINAL_STATUSES, AbstractJob, JobStatus
from imagineer.core.request_context import current_request_id
from imagineer.core.workers import WorkerView, forget_gone_workers, job_key

logger = get_logger(__name__)
ABSOLUTE_PATH = re.compile(r"(?<![\w:/>])/(?:[\w.\-]+/)+[\w.\-]*")

Job = TypeVar("Job", bound=AbstractJob)
T = TypeVar("T")

# The database went away (restart, failover, network): what the lifecycle's own statements
# (claim, finish) wait through before giving up, well inside IMAGINEER_JOB_STALE_AFTER_SECONDS so a
# job that outlived a short outage is finished by its worker rather than reaped.
DATABASE_OUTAGE_ERRORS = (OperationalError, InterfaceError)
DATABASE_PATIENCE_SECONDS = 60.0


class JobCancelled(Exception):
    """Raised inside a running job when an operator asked to cancel it."""


class JobLost(Exception):
    """The running job is no longer this worker's: reaped (and maybe retried) meanwhile."""


class JobNotCancellable(ConflictError):
    code = "job_not_cancellable"


class JobNotRetryable(ConflictError):
    code = "job_not_retryable"


def job_models() -> list[type[AbstractJob]]:
    """Every concrete job model installed (for the reaper and the admin)."""
    return [m for m in apps.get_models() if issubclass(m, AbstractJob)]


def enqueue_job(job: AbstractJob) -> None:
    """Send the job's task once the row that describes it is committed."""
    job.request_id = job.request_id or current_request_id()
    job.save(update_fields=["request_id", "updated_at"])

    def send() -> None:
        try:
            task_id = _send_task(job)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the job must not wait forever
            now = timezone.now()
            type(job).objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED,
                finished_at=now,
                updated_at=now,
                error_message="The task queue could not be reached, so the job was not started. Retry it.",
            )
            logger.error("job.enqueue_failed", job_type=job._meta.label, job_id=job.pk, exc_type=type(exc).__name__)
            raise ServiceUnavailableError(
                "The task queue is unreachable; the job was recorded as failed. Try again shortly.",
                code="queue_unavailable",
                details={"job_id": job.pk},
            ) from exc
        now = timezone.now()
        type(job).objects.filter(pk=job.pk).update(celery_task_id=task_id, sent_at=now)
        job.celery_task_id, job.sent_at = task_id, now
        logger.info("job.enqueued", job_type=job._meta.label, job_id=job.pk, task_id=task_id)

    transaction.on_commit(send)


def _send_task(job: AbstractJob) -> str:
    """Put one message for the job on its queue; the message's task id."""
    result = current_app.send_task(job.task_name, args=[job.pk], headers={"imagineer_request_id": job.request_id})
    return result.id


def _worker_name() -> str:
    """The Celery node name claiming the job (`gpu0@host`), else the machine's host name.

    Two workers on one machine (a GPU each) share a host name; the node name, unique per worker,
    is also what `celery inspect` and `control cancel_consumer --destination` answer to.
    """
    from celery import current_task

    node = getattr(getattr(current_task, "request", None), "hostname", None)
    return str(node) if node else socket.gethostname()


def _close_broken_connection() -> None:
    """Drop this thread's database connection after an outage error, so the next statement reconnects."""
    try:
        connection.close()
    except DatabaseError:
        pass  # it was broken anyway


def _through_outage(statement: Callable[[], T], *, step: str, patience: float = DATABASE_PATIENCE_SECONDS) -> T:
    """Run one lifecycle statement, again and again (backing off) while the database cannot be reached."""
    deadline = time.monotonic() + patience
    delay = 0.25
    while True:
        try:
            return statement()
        except DATABASE_OUTAGE_ERRORS as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("job.database_unavailable", step=step, exc_type=type(exc).__name__, retry_in=delay)
            _close_broken_connection()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def claim_job(model: type[Job], job_id: int, *, task_id: str = "") -> Job | None:
    """Move a queued job to running; None when it is gone, already claimed, or cancelled.

    Waits through a short database outage; after DATABASE_PATIENCE_SECONDS the outage error is raised.
    """

    def claim() -> int:
        now = timezone.now()
        return model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=_worker_name(),
            celery_task_id=task_id,
            attempts=F("attempts") + 1,
            updated_at=now,
        )

    # An UPDATE that committed but whose answer the outage swallowed is retried as a skip (the row
    # is running already): the reaper ends that attempt. Rare, and never a job run twice.
    if not _through_outage(claim, step="claim"):
        logger.info("job.claim_skipped", job_type=model._meta.label, job_id=job_id)
        return None
    return _through_outage(lambda: model.objects.get(pk=job_id), step="claim")


def record_progress(
    job: AbstractJob, current: int, total: int | None = None, message: str = "", extra_fields: dict | None = None
) -> None:
    """Store progress and a heartbeat; raise JobCancelled if an operator asked to stop.

    extra_fields are columns of the job's own model written in the same update (a training run's
    latest loss), so they share its outage handling and its claim check.

    While the database cannot be reached the report is dropped and the work goes on: the next
    report after the outage says whether the job is still this worker's (JobLost if it was reaped).
    """
    fields = {**(extra_fields or {}), "progress_current": current, "heartbeat_at": timezone.now()}
    fields["updated_at"] = timezone.now()
    if total is not None:
        fields["progress_total"] = total
    if message:
        fields["progress_message"] = message[:255]
    try:
        if not _this_claim(job).update(**fields):
            raise JobLost()
        for name, value in fields.items():
            setattr(job, name, value)
        raise_if_cancelled(job)
    except DATABASE_OUTAGE_ERRORS as exc:
        if connection.in_atomic_block:
            raise
        logger.warning("job.progress_not_saved", exc_type=type(exc).__name__)
        _close_broken_connection()


def update_job(job: AbstractJob, **fields) -> None:
    """Write columns of a running job under the claim this worker holds; JobLost if it is gone.

    Every write a job kind makes to its own row while it runs (counters, results, the trainer's
    pid, the output album) goes through here, so a reaped attempt's late write can never touch the
    row of its retry. Values may be expressions (F("done") + 1): those fields are read back.
    Waits through a short database outage like the lifecycle's own statements.
    """
    fields["updated_at"] = timezone.now()
    if not _through_outage(lambda: _this_claim(job).update(**fields), step="update"):
        raise JobLost()
    expressions = [name for name, value in fields.items() if hasattr(value, "resolve_expression")]
    for name, value in fields.items():
        if name not in expressions:
            setattr(job, name, value)
    if expressions:
        _through_outage(lambda: job.refresh_from_db(fields=expressions), step="update")


def _this_claim(job: AbstractJob):
    """The job's row while it is still running under the claim this worker holds.

    A job that was reaped and retried runs again under a new attempt number; the first worker's
    late writes then match nothing instead of touching the new attempt.
    """
    return type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)


def raise_if_cancelled(job: AbstractJob) -> None:
    """Raise JobCancelled if an operator asked this running job to stop."""
    if type(job).objects.filter(pk=job.pk, cancel_requested=True).exists():
        raise JobCancelled()


def finish_job(job: AbstractJob, status: JobStatus, error_message: str = "") -> bool:
    """End a running job. False when it was no longer running (e.g. reaped meanwhile)."""

    def finish() -> int:
        now = timezone.now()
        return _this_claim(job).update(
            status=status, finished_at=now, heartbeat_at=now, error_message=error_message[:4000], updated_at=now
        )

    done = _through_outage(finish, step="finish")
    _through_outage(job.refresh_from_db, step="finish")
    logger.info("job.finished", job_type=job._meta.label, job_id=job.pk, status=job.status)
    return bool(done)


def cancel_job(job: AbstractJob) -> AbstractJob:
    """Cancel a queued job at once; ask a running one to stop at its next progress report."""
    model = type(job)
    now = timezone.now()
    cancelled_queued = model.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=now, error_message="Cancelled before it started.", updated_at=now
    )
    flagged_running = cancelled_queued or model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        cancel_requested=True, updated_at=now
    )
    if not flagged_running:
        job.refresh_from_db()
        raise JobNotCancellable(
            f"This job is {job.status}; only queued or running jobs can be cancelled.",
            details={"status": job.status},
        )
    job.refresh_from_db()
    logger.info("job.cancel_requested", job_type=job._meta.label, job_id=job.pk, status=job.status)
    return job


def retry_job(job: AbstractJob) -> AbstractJob:
    """Put a failed or cancelled job back in the queue."""
    model = type(job)
    reset = model.objects.filter(pk=job.pk, status__in=[JobStatus.FAILED, JobStatus.CANCELLED]).update(
        **model.retry_reset_fields,
        status=JobStatus.QUEUED,
        cancel_requested=False,
        error_message="",
        progress_current=0,
        progress_message="",
        started_at=None,
        finished_at=None,
        heartbeat_at=None,
        resend_count=0,
        updated_at=timezone.now(),
    )
    job.refresh_from_db()
    if not reset:
        raise JobNotRetryable(
            f"This job is {job.status}; only failed or cancelled jobs can be retried.", details={"status": job.status}
        )
    enqueue_job(job)
    return job


def reap_stale_jobs(stale_after: timedelta | None = None) -> int:
    """Fail running jobs whose heartbeat stopped (worker killed, machine lost). Returns how many."""
    stale_after = stale_after or timedelta(seconds=settings.IMAGINEER_JOB_STALE_AFTER_SECONDS)
    cutoff = timezone.now() - stale_after
    reaped = 0
    for model in job_models():
        stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
        for job in stale:
            now = timezone.now()
            reaped += model.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
                status=JobStatus.FAILED,
                finished_at=now,
                updated_at=now,
                error_message=(
                    f"The worker stopped responding: no heartbeat since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC. "
                    "Retry the job to run it again."
                ),
            )
    if reaped:
        logger.warning("job.reaped", count=reaped)
    return reaped


class LostBecause(StrEnum):
    """Why the sweep holds a queued job's message lost (the `reason` of its log lines)."""

    NO_WORKER = "no_worker"  # no live worker consumes the job's queue
    HOLDER_DIED = "holder_died"  # the worker that held the message died (its last report lists it)
    NOT_IN_QUEUE = "not_in_queue"  # a live consumer of the queue has had a free slot all along


def why_lost(job: AbstractJob, view: WorkerView, cutoff: datetime) -> LostBecause | None:
    """Why the queued job's message is lost, or None while it is held or waits in the broker.

    Time waited is no reason on its own: a job may wait long behind a training run. A job is lost
    when no live worker holds it and either nobody could take it (no live consumer of its queue),
    or the worker that held its last message died (the sweep's own new message is not that one), or
    a live consumer with a free slot would have taken it from the broker by now (it has had that
    free slot since before `cutoff`, and the job was sent earlier).
    """
    key = job_key(job.task_name, job.pk)
    if key in view.live_held:
        return None
    consumers = view.consumers(queue_for_task(job.task_name))
    if not consumers:
        return LostBecause.NO_WORKER
    if job.celery_task_id and job.celery_task_id in view.dead_held_task_ids:
        return LostBecause.HOLDER_DIED
    if any(worker.free_slot_since is not None and worker.free_slot_since <= cutoff for worker in consumers):
        return LostBecause.NOT_IN_QUEUE
    return None


def resend_lost_jobs(*, now: datetime | None = None) -> tuple[int, int]:
    """Send again the task of every queued job whose message no live worker holds; (re-sent, failed).

    Runs from beat (queue `maintenance`) every IMAGINEER_JOB_SWEEP_SECONDS, for every job kind. A
    job sent IMAGINEER_JOB_RESEND_AFTER_SECONDS ago or more (or never sent: its process died
    between commit and send) that `why_lost` finds lost is sent again, at most
    IMAGINEER_JOB_MAX_RESENDS times; after that it is failed with a reason an operator can act on.
    A message that comes back later (Redis hands out a dead worker's unacknowledged messages again
    after its visibility timeout) finds the job claimed and does nothing: the claim runs a job once.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGINEER_JOB_RESEND_AFTER_SECONDS)
    view = WorkerView.load(now)
    resent = failed = 0
    for model in job_models():
        waiting = model.objects.filter(status=JobStatus.QUEUED).filter(
            Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True, created_at__lt=cutoff)
        )
        fields = ("pk", "status", "resend_count", "request_id", "sent_at", "created_at", "celery_task_id")
        for job in waiting.only(*fields):
            reason = why_lost(job, view, cutoff)
            if reason is None:
                continue
            if job.resend_count >= settings.IMAGINEER_JOB_MAX_RESENDS:
                failed += _fail_unclaimed(job, reason)
            else:
                resent += _resend(job, reason)
    forget_gone_workers(now)
    if resent or failed:
        logger.warning("job.sweep", resent=resent, failed=failed)
    return resent, failed


def _resend(job: AbstractJob, reason: LostBecause) -> int:
    """One more message for the job; counted only if the job was still queued as the sweep saw it."""
    task_id = _send_task(job)  # a broker that cannot be reached fails the sweep: the next one tries again
    now = timezone.now()
    counted = (
        type(job)
        .objects.filter(pk=job.pk, status=JobStatus.QUEUED, resend_count=job.resend_count)
        .update(resend_count=F("resend_count") + 1, sent_at=now, celery_task_id=task_id, updated_at=now)
    )
    logger.warning(
        "job.resent",
        job_type=job._meta.label,
        job_id=job.pk,
        queue=queue_for_task(job.task_name),
        reason=reason.value,
        resend_count=job.resend_count + 1,
        task_id=task_id,
    )
    return counted


def _fail_unclaimed(job: AbstractJob, reason: LostBecause) -> int:
    queue = queue_for_task(job.task_name)
    sends = job.resend_count + 1
    if reason is LostBecause.NO_WORKER:
        message = (
            f"No worker consumes queue `{queue}`: the job was sent {sends} times and no worker took it. "
            f"Start a worker for queue `{queue}` (docs/deployment/CELERY.md), then retry the job."
        )
    else:
        message = (
            f"The job was sent {sends} times and each time its message was lost before a worker of queue "
            f"`{queue}` started it (workers stopping or dying). Check that queue's workers (admin: Celery "
            "workers), then retry the job."
        )
    now = timezone.now()
    done = (
        type(job)
        .objects.filter(pk=job.pk, status=JobStatus.QUEUED, resend_count=job.resend_count)
        .update(status=JobStatus.FAILED, finished_at=now, updated_at=now, error_message=message)
    )
    if done:
        logger.error("job.unclaimed", job_type=job._meta.label, job_id=job.pk, queue=queue, reason=reason.value)
    return done


def fail_running_jobs(model: type[AbstractJob], reason: str, *, except_pk: int | None = None) -> int:
    """Fail every running job of a kind whose process is known to be gone; returns how many.

    For kinds that know without waiting for the heartbeat: a legacy import holds an exclusive lock
    while it runs, so any other import still marked running once the lock is taken has no process.
    """
    now = timezone.now()
    failed = (
        model.objects.filter(status=JobStatus.RUNNING)
        .exclude(pk=except_pk)
        .update(status=JobStatus.FAILED, finished_at=now, updated_at=now, error_message=reason[:4000])
    )
    if failed:
        logger.warning("job.failed_without_process", job_type=model._meta.label, count=failed)
    return failed


@contextmanager
def heartbeat(job: AbstractJob, interval: float | None = None) -> Iterator[None]:
    """Keep heartbeat_at fresh from a side thread while a long step (model load, I/O) runs."""
    interval = interval or settings.IMAGINEER_JOB_HEARTBEAT_SECONDS
    stop = threading.Event()
    model, pk = type(job), job.pk

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _this_claim(job).update(heartbeat_at=timezone.now())
                except DATABASE_OUTAGE_ERRORS as exc:
                    # Keep beating: a thread that died here would leave a healthy job to the reaper.
                    logger.warning(
                        "job.heartbeat_not_saved", job_type=model._meta.label, job_id=pk, exc_type=type(exc).__name__
                    )
                    _close_broken_connection()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{model._meta.label}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def run_job(model: type[Job], job_id: int, work: Callable[[Job], None], *, task_id: str = "") -> Job | None:
    """Claim the job, run `work(job)`, and end it in a final state whatever happens.

    `work` reports progress with record_progress(); an exception fails the job with a readable
    message, JobCancelled ends it as cancelled. Returns the job, or None if it could not be claimed.
    """
    try:
        job = claim_job(model, job_id, task_id=task_id)
    except DATABASE_OUTAGE_ERRORS as exc:
        # Acknowledged, the message would be gone while the row still says queued: a lost job.
        # Rejected with requeue, it is delivered again (and claimed once the database is back).
        logger.error("job.claim_failed", job_type=model._meta.label, job_id=job_id, exc_type=type(exc).__name__)
        raise Reject(exc, requeue=True) from exc
    if job is None:
        return None
    # Every log line of the job's work, whoever logs it, carries the job's type and id.
    with structlog.contextvars.bound_contextvars(job_type=model._meta.label, job_id=job.pk):
        logger.info("job.started")
        try:
            with heartbeat(job):
                work(job)
        except JobCancelled:
            finish_job(job, JobStatus.CANCELLED, "Cancelled by an operator.")
        except JobLost:
            logger.warning("job.lost", attempt=job.attempts)  # its fate was decided elsewhere (reaper)
        except Exception as exc:  # noqa: BLE001 - the job must end failed, whatever went wrong
            logger.exception("job.failed")
            finish_job(job, JobStatus.FAILED, describe_failure(exc))
        else:
            cancel_requested = model.objects.filter(pk=job.pk, cancel_requested=True).exists
            if _through_outage(cancel_requested, step="finish"):
                finish_job(job, JobStatus.CANCELLED, "Cancelled by an operator.")
            else:
                finish_job(job, JobStatus.SUCCEEDED)
    return job


def job_task(model: type[Job]) -> Callable[[Callable[[Job], None]], Task]:
    """Declare the Celery task that runs one kind of job: `@job_task(GenerationJob)` over its work.

    The task is named after the model's `task_name` (what enqueue_job sends), takes the job id,
    and runs the work through run_job: claim, heartbeat, finish, cancel. Its queue comes from the
    explicit table in imagineer/celery.py.
    """

    def declare(work: Callable[[Job], None]) -> Task:
        def run(self: Task, job_id: int) -> None:
            run_job(model, job_id, work, task_id=self.request.id or "")

        run.__name__ = work.__name__
        run.__qualname__ = work.__qualname__
        run.__module__ = work.__module__
        run.__doc__ = work.__doc__
        return shared_task(bind=True, name=model.task_name)(run)

    return declare


def describe_failure(exc: Exception) -> str:
    """The error message an operator reads: the exception's own words, without paths."""
    from imagineer.core.logging import redact_event

    if isinstance(exc, DATABASE_OUTAGE_ERRORS):  # its text names hosts and ports, not the problem
        return f"The database could not be reached while the job ran ({type(exc).__name__}). Retry the job."
    text = str(exc) or type(exc).__name__
    text = redact_event(None, "", {"error": f"{type(exc).__name__}: {text}"})["error"]
    return ABSOLUTE_PATH.sub("<path>", text)  # paths outside the known roots too (scratch, /tmp)


__all__ = [
    "FINAL_STATUSES",
    "JobCancelled",
    "JobLost",
    "JobNotCancellable",
    "cancel_job",
    "claim_job",
    "enqueue_job",
    "fail_running_jobs",
    "finish_job",
    "job_task",
    "reap_stale_jobs",
    "record_progress",
    "resend_lost_jobs",
    "retry_job",
    "run_job",
    "update_job",
]
