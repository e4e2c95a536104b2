"""What each Celery worker holds, as the worker itself reports it: the ground the job sweep stands on.

A thread in every worker's main process writes that worker's `CeleryWorker` row every
IMAGINEER_WORKER_HEARTBEAT_SECONDS, and at once when a message arrives: the queues it consumes, its
concurrency, the job messages it holds (received, waiting for a pool slot or running) and since
when it has had a free pool slot. A worker that stops cleanly marks its row stopped (its unstarted
messages go back to the broker); a worker that is killed leaves its last report behind, and the
sweep (imagineer.core.jobs.resend_lost_jobs) reads the jobs listed there as lost with it.

Celery's `inspect` broadcast would answer the same question for live workers, but it says nothing
about a dead one, needs a broker that fans out, and costs a round of waiting on every admin page;
a row per worker is read in one query.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import signals
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, models
from django.db.models import Q
from django.utils import timezone

from imagineer.celery import queue_for_task
from imagineer.core.logging import get_logger
from imagineer.core.models import AbstractJob, CeleryWorker, JobStatus

logger = get_logger(__name__)

# Tasks a worker runs that do not take a pool slot from jobs for long: the sweep itself runs on a
# maintenance worker, which must still count as having a free slot while it sweeps.
SWEEP_TASK_NAME = "imagineer.core.tasks.resend_lost_jobs"
# Rows of workers gone for longer than this are removed by the sweep.
FORGET_WORKERS_AFTER = timedelta(days=1)


def job_key(task_name: str, job_id: int | str) -> str:
    """How a worker's report names a job message it holds: "generation.tasks.run_generation_job#42"."""
    return f"{task_name}#{job_id}"


def _job_task_names() -> frozenset[str]:
    return frozenset(model.task_name for model in apps.get_models() if issubclass(model, AbstractJob))


def held_messages() -> tuple[list[str], list[str], int]:
    """(job keys, their messages' task ids, pool slots taken) of what this worker process holds now.

    Reads Celery's own bookkeeping (`celery.worker.state.requests`: every message received and
    not yet finished), which the main process's event loop changes while this runs in a thread.
    """
    from celery.worker import state

    for _ in range(5):
        try:
            requests = list(state.requests.values())
            break
        except RuntimeError:  # changed size while copied: copy again
            continue
    else:
        requests = []
    job_tasks = _job_task_names()
    keys, task_ids, busy = [], [], 0
    for request in requests:
        if request.name == SWEEP_TASK_NAME:
            continue
        busy += 1
        args = request.args or []
        if request.name in job_tasks and args:
            keys.append(job_key(request.name, args[0]))
            task_ids.append(request.id)
    return sorted(keys), sorted(task_ids), busy


class WorkerReporter:
    """The thread that keeps this worker's row current (started by the worker_ready signal)."""

    def __init__(self, consumer) -> None:
        self.consumer = consumer
        self.instance = uuid.uuid4().hex
        self.started_at = timezone.now()
        self.free_slot_since: datetime | None = self.started_at
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imagineer-worker-report", daemon=True)

    @property
    def name(self) -> str:
        return str(self.consumer.hostname)

    @property
    def queues(self) -> list[str]:
        task_consumer = getattr(self.consumer, "task_consumer", None)
        if task_consumer is not None:
            return sorted({queue.name for queue in task_consumer.queues})
        return sorted(self.consumer.app.amqp.queues.consume_from or {})

    @property
    def concurrency(self) -> int:
        controller = getattr(self.consumer, "controller", None)
        return int(getattr(controller, "concurrency", None) or 1)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """The worker is shutting down cleanly: a last report that says so."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.report(stopped=True)
        connection.close()

    def _run(self) -> None:
        interval = settings.IMAGINEER_WORKER_HEARTBEAT_SECONDS
        try:
            while not self._stop.is_set():
                self.report()
                self._wake.wait(interval)
                self._wake.clear()
        finally:
            connection.close()

    def report(self, *, stopped: bool = False) -> None:
        held, task_ids, busy = ([], [], 0) if stopped else held_messages()
        now = timezone.now()
        if busy < self.concurrency:
            self.free_slot_since = self.free_slot_since or now
        else:
            self.free_slot_since = None
        fields = {
            "name": self.name[:255],
            "pid": os.getpid(),
            "queues": self.queues,
            "concurrency": self.concurrency,
            "held_jobs": held,
            "held_task_ids": task_ids,
            "free_slot_since": self.free_slot_since,
            "started_at": self.started_at,
            "last_seen_at": now,
            "stopped_at": now if stopped else None,
        }
        try:
            CeleryWorker.objects.update_or_create(instance=self.instance, defaults=fields)
        except DatabaseError as exc:
            # Keep reporting: the next report after an outage says the worker is alive again.
            logger.warning("worker.report_not_saved", exc_type=type(exc).__name__)
            with contextlib.suppress(DatabaseError):  # it was broken anyway: the next report reconnects
                connection.close()


_reporter: WorkerReporter | None = None


@signals.worker_ready.connect
def start_reporting(sender=None, **kwargs) -> None:
    """worker_ready (sender: the worker's consumer): this worker starts reporting what it holds."""
    global _reporter
    if _reporter is None and sender is not None:
        _reporter = WorkerReporter(sender)
        _reporter.start()
        logger.info("worker.reporting", worker=_reporter.name, queues=_reporter.queues)


@signals.task_received.connect
def message_received(**kwargs) -> None:
    """task_received: report the new message now rather than at the next interval."""
    if _reporter is not None:
        _reporter.wake()


@signals.worker_shutdown.connect
def stop_reporting(**kwargs) -> None:
    """worker_shutdown: a clean stop; the messages it had not started went back to the broker."""
    global _reporter
    if _reporter is not None:
        _reporter.stop()
        _reporter = None


class WorkerState(models.TextChoices):
    ALIVE = "alive", "Alive"
    DEAD = "dead", "Dead"  # not stopped, but silent for longer than IMAGINEER_WORKER_STALE_AFTER_SECONDS
    STOPPED = "stopped", "Stopped"


def _seen_after(now: datetime | None = None) -> datetime:
    """A worker not stopped and seen since then is alive."""
    return (now or timezone.now()) - timedelta(seconds=settings.IMAGINEER_WORKER_STALE_AFTER_SECONDS)


def worker_state(worker: CeleryWorker, now: datetime | None = None) -> WorkerState:
    if worker.stopped_at is not None:
        return WorkerState.STOPPED
    return WorkerState.ALIVE if worker.last_seen_at >= _seen_after(now) else WorkerState.DEAD


def workers_in_state(state: WorkerState, now: datetime | None = None) -> Q:
    """The same rule as worker_state, as a filter."""
    if state == WorkerState.STOPPED:
        return Q(stopped_at__isnull=False)
    fresh = Q(last_seen_at__gte=_seen_after(now))
    return Q(stopped_at__isnull=True) & (fresh if state == WorkerState.ALIVE else ~fresh)


def waits_for_worker(job: AbstractJob, live_queues: Container[str]) -> bool:
    """A queued job that no live worker could take: nothing consumes its queue."""
    return job.status == JobStatus.QUEUED and queue_for_task(job.task_name) not in live_queues


@dataclass
class WorkerView:
    """The workers as their rows say now: who is alive, the jobs they hold, and the task ids of the
    messages the dead ones held (a job's message, not the job: the sweep may have sent it again)."""

    live: list[CeleryWorker] = field(default_factory=list)
    live_held: set[str] = field(default_factory=set)
    dead_held_task_ids: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, now: datetime | None = None) -> WorkerView:
        now = now or timezone.now()
        seen_after = now - timedelta(seconds=settings.IMAGINEER_WORKER_STALE_AFTER_SECONDS)
        view = cls()
        for worker in CeleryWorker.objects.filter(
            stopped_at__isnull=True, last_seen_at__gte=now - FORGET_WORKERS_AFTER
        ):
            if worker.last_seen_at >= seen_after:
                view.live.append(worker)
                view.live_held.update(worker.held_jobs)
            else:
                view.dead_held_task_ids.update(worker.held_task_ids)
        return view

    def consumers(self, queue: str) -> list[CeleryWorker]:
        return [worker for worker in self.live if queue in worker.queues]

    @property
    def consumed_queues(self) -> set[str]:
        return {queue for worker in self.live for queue in worker.queues}


def queues_with_live_worker() -> set[str]:
    """The queues some live worker consumes (admin and API: "queued, no worker for this queue")."""
    return WorkerView.load().consumed_queues


class LiveQueues:
    """The queues some live worker consumes, read at the first question and then kept: one read per
    request or response that asks, none for one that never shows a queued job."""

    def __init__(self) -> None:
        self._queues: set[str] | None = None

    def __contains__(self, queue: object) -> bool:
        if self._queues is None:
            self._queues = queues_with_live_worker()
        return queue in self._queues


def forget_gone_workers(now: datetime | None = None) -> int:
    """Remove the rows of workers stopped or silent for longer than FORGET_WORKERS_AFTER."""
    cutoff = (now or timezone.now()) - FORGET_WORKERS_AFTER
    deleted, _ = CeleryWorker.objects.filter(last_seen_at__lt=cutoff).delete()
    return deleted
