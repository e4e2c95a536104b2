"""No job waits for a dead worker: the sweep sends again a queued job whose message no live worker
holds, for every job kind, and fails it with the queue named after IMAGINEER_JOB_MAX_RESENDS.

What "holds" means comes from the workers' own reports (imagineer/core/workers.py): rows are
written here by hand for the decisions, and by a real worker in the tests marked slow.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from albums.models import ThumbnailJob
from imagineer.celery import queue_for_task
from imagineer.core import jobs
from imagineer.core.jobs import LostBecause, why_lost
from imagineer.core.models import CeleryWorker, JobStatus
from imagineer.core.workers import FORGET_WORKERS_AFTER, WorkerView, forget_gone_workers, job_key
from tests.factories import JOB_KINDS, make_image, make_job_row, make_worker_row
from tests.log_capture import LogCapture
from tests.processes import celery_worker, wait_for_final_job

RESEND_AFTER = 180.0


@pytest.fixture(autouse=True)
def sweep_settings(settings):
    settings.IMAGINEER_JOB_RESEND_AFTER_SECONDS = RESEND_AFTER
    settings.IMAGINEER_JOB_MAX_RESENDS = 3
    settings.IMAGINEER_WORKER_STALE_AFTER_SECONDS = 45.0
    return settings


def worker_row(queues: list[str], *, alive: bool = True, **fields) -> CeleryWorker:
    """A live worker's report (seen a moment ago), or a dead one's (silent for ten minutes)."""
    return make_worker_row(queues, silent_for=1 if alive else 600, **fields)


def sent_ago(job, seconds: float):
    type(job).objects.filter(pk=job.pk).update(sent_at=timezone.now() - timedelta(seconds=seconds), celery_task_id="a")
    job.refresh_from_db()
    return job


def key(job) -> str:
    return job_key(job.task_name, job.pk)


def holding(*held_jobs) -> dict:
    """What a worker reports of the messages of these jobs it holds: their keys and task ids."""
    return {"held": [key(job) for job in held_jobs], "held_task_ids": [job.celery_task_id for job in held_jobs]}


# --- Deciding what is lost -------------------------------------------------------------------


@pytest.mark.django_db
class TestWhyLost:
    def decide(self, job):
        cutoff = timezone.now() - timedelta(seconds=RESEND_AFTER)
        return why_lost(job, WorkerView.load(), cutoff)

    def test_a_job_a_live_worker_holds_is_not_lost_however_old(self):
        job = sent_ago(ThumbnailJob.objects.create(), 3600)
        worker_row(["default"], **holding(job))
        assert self.decide(job) is None

    def test_a_job_waiting_behind_busy_workers_is_not_lost(self):
        """Time waited is no reason: a job may wait an hour behind a long run."""
        job = sent_ago(ThumbnailJob.objects.create(), 3600)
        worker_row(["default"], held=["albums.tasks.rebuild_thumbnails#999999"], free_for=None)
        assert self.decide(job) is None

    def test_no_live_worker_on_its_queue(self):
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["generation", "training"])  # alive, other queues
        worker_row(["default"], alive=False)  # its queue, dead
        worker_row(["default"], stopped=True)  # its queue, stopped
        assert self.decide(job) is LostBecause.NO_WORKER

    def test_its_holder_died(self):
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["default"], **holding(job), alive=False)
        worker_row(["default"])  # a live, busy consumer: the message is not coming back to it
        assert self.decide(job) is LostBecause.HOLDER_DIED

    def test_a_job_sent_again_after_its_holder_died_waits_for_its_new_message(self):
        """The dead worker's report stays as it was: it names the message that died, not the job."""
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["default"], **holding(job), alive=False)
        worker_row(["default"])  # busy: the new message waits in the broker for it
        ThumbnailJob.objects.filter(pk=job.pk).update(celery_task_id="the-new-message", resend_count=1)
        job.refresh_from_db()
        assert self.decide(job) is None

    def test_a_cleanly_stopped_holder_put_its_messages_back(self):
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["default"], **holding(job), stopped=True)
        worker_row(["default"])  # busy: the message waits in the broker for it
        assert self.decide(job) is None

    def test_a_consumer_with_a_free_slot_all_along_would_have_taken_it(self):
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["default"], free_for=RESEND_AFTER + 30)
        assert self.decide(job) is LostBecause.NOT_IN_QUEUE

    def test_a_consumer_free_only_lately_may_not_have_fetched_it_yet(self):
        job = sent_ago(ThumbnailJob.objects.create(), 600)
        worker_row(["default"], free_for=5)
        assert self.decide(job) is None


# --- The sweep ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("label", JOB_KINDS)
def test_the_sweep_resends_every_job_kind_whose_worker_died_holding_it(label):
    job = sent_ago(make_job_row(label), RESEND_AFTER + 60)
    queue = queue_for_task(job.task_name)
    worker_row([queue], **holding(job), alive=False)
    worker_row([queue])  # the replacement worker, busy

    with LogCapture() as logs:
        assert jobs.resend_lost_jobs() == (1, 0)

    resent = type(job).objects.get(pk=job.pk)
    assert (resent.status, resent.resend_count) == (JobStatus.QUEUED, 1)
    assert resent.celery_task_id not in ("", "a") and resent.sent_at > job.sent_at
    [line] = [line for line in logs.json_lines() if line["event"] == "job.resent"]
    assert line["job_id"] == job.pk and line["queue"] == queue and line["reason"] == "holder_died"
    # Sent again a moment ago: the next sweep leaves it to the worker. And long after, while its
    # queue's worker is busy, it waits for its new message: the dead worker never held that one.
    assert jobs.resend_lost_jobs() == (0, 0)
    type(job).objects.filter(pk=job.pk).update(sent_at=timezone.now() - timedelta(seconds=RESEND_AFTER + 60))
    assert jobs.resend_lost_jobs() == (0, 0)
    assert type(job).objects.get(pk=job.pk).resend_count == 1


@pytest.mark.django_db
def test_a_job_sent_a_moment_ago_or_held_or_final_is_left_alone():
    fresh = sent_ago(ThumbnailJob.objects.create(), 5)
    held = sent_ago(ThumbnailJob.objects.create(), 3600)
    done = sent_ago(ThumbnailJob.objects.create(status=JobStatus.SUCCEEDED), 3600)
    worker_row(["default"], **holding(held), free_for=3600)

    assert jobs.resend_lost_jobs() == (0, 0)
    for job in (fresh, held, done):
        before = job.celery_task_id, job.sent_at, job.status
        job.refresh_from_db()
        assert (job.celery_task_id, job.sent_at, job.status, job.resend_count) == (*before, 0)


@pytest.mark.django_db
def test_a_job_whose_message_was_never_sent_is_sent():
    """The process that committed the row died before its on-commit send: no sent_at, no message."""
    job = ThumbnailJob.objects.create()
    ThumbnailJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    worker_row(["default"], free_for=3600)
    assert jobs.resend_lost_jobs() == (1, 0)
    job.refresh_from_db()
    assert job.resend_count == 1 and job.celery_task_id and job.sent_at


@pytest.mark.django_db
def test_after_the_last_resend_the_job_fails_naming_the_queue_no_worker_consumes(admin_client_api):
    job = sent_ago(make_job_row("TrainingRun"), RESEND_AFTER + 1)
    worker_row(["default", "maintenance"])  # no worker consumes `training`
    for sends in range(1, 4):
        assert jobs.resend_lost_jobs() == (1, 0)
        job = sent_ago(job, RESEND_AFTER + 1)
        assert job.resend_count == sends

    with LogCapture() as logs:
        assert jobs.resend_lost_jobs() == (0, 1)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished_at
    assert job.error_message.startswith("No worker consumes queue `training`: the job was sent 4 times")
    assert "Start a worker for queue `training`" in job.error_message and "retry the job" in job.error_message
    assert any(line["event"] == "job.unclaimed" and line["queue"] == "training" for line in logs.json_lines())
    body = admin_client_api.get(f"/api/training/runs/{job.pk}/").json()
    assert (body["status"], body["resend_count"]) == ("failed", 3)
    assert body["error_message"] == job.error_message

    # A retry starts the count afresh and sends it.
    jobs.retry_job(job)
    job.refresh_from_db()
    assert (job.status, job.resend_count) == (JobStatus.QUEUED, 0)


@pytest.mark.django_db
def test_lost_for_other_reasons_the_failure_says_the_messages_were_lost():
    job = sent_ago(ThumbnailJob.objects.create(), RESEND_AFTER + 1)
    ThumbnailJob.objects.filter(pk=job.pk).update(resend_count=3)
    worker_row(["default"], **holding(job), alive=False)
    worker_row(["default"])
    assert jobs.resend_lost_jobs() == (0, 1)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "sent 4 times and each time its message was lost" in job.error_message
    assert "queue `default`" in job.error_message


@pytest.mark.django_db
def test_a_job_claimed_while_the_sweep_ran_is_not_counted():
    """The sweep's count is conditional on the job being queued as the sweep read it."""
    job = sent_ago(ThumbnailJob.objects.create(), RESEND_AFTER + 1)
    jobs.claim_job(ThumbnailJob, job.pk)
    assert jobs._resend(job, LostBecause.NOT_IN_QUEUE) == 0
    job.refresh_from_db()
    assert (job.status, job.resend_count) == (JobStatus.RUNNING, 0)


@pytest.mark.django_db
def test_rows_of_workers_gone_for_a_day_are_forgotten():
    kept = worker_row(["default"], alive=False)
    gone = worker_row(["default"], alive=False)
    CeleryWorker.objects.filter(pk=gone.pk).update(last_seen_at=timezone.now() - FORGET_WORKERS_AFTER - timedelta(1))
    assert forget_gone_workers() == 1
    assert list(CeleryWorker.objects.values_list("pk", flat=True)) == [kept.pk]


# --- With a real worker ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_reports_itself_runs_the_resent_job_once_and_skips_the_old_message(media_root):
    """A thumbnail job whose message died with a worker: the sweep sends it again, the live worker
    runs it; the old message, handed out again later (Redis does after its visibility timeout),
    finds the job claimed and does nothing."""
    image = make_image()
    job = ThumbnailJob.objects.create(image_ids=[image.pk], progress_total=1)
    job = sent_ago(job, RESEND_AFTER + 1)
    dead = worker_row(["default"], **holding(job), alive=False)

    with celery_worker(media_root=media_root, extra_env={"IMAGINEER_WORKER_HEARTBEAT_SECONDS": "0.3"}) as worker:
        reported = wait_for_worker_row(worker)
        assert reported.queues == ["default", "maintenance"] and reported.concurrency == 1
        assert reported.stopped_at is None and reported.pk != dead.pk

        assert jobs.resend_lost_jobs() == (1, 0)
        job = wait_for_final_job(job, worker=worker)
        assert (job.status, job.attempts, job.resend_count) == (JobStatus.SUCCEEDED, 1, 1), job.error_message
        finished_at = job.finished_at

        jobs._send_task(job)  # the old message, back
        assert worker.wait_for("job.claim_skipped", timeout=60), worker.text[-2000:]
        job.refresh_from_db()
        assert (job.status, job.attempts, job.finished_at, job.rebuilt_count) == (
            JobStatus.SUCCEEDED,
            1,
            finished_at,
            1,
        )
        wait_until_reported(reported, lambda row: row.held_jobs == [], worker)
    # A clean stop says so: its messages went back to the broker, none are lost with it.
    reported.refresh_from_db()
    assert reported.stopped_at is not None and reported.held_jobs == []


def wait_for_worker_row(worker, timeout: float = 30) -> CeleryWorker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recent = CeleryWorker.objects.filter(
            stopped_at__isnull=True, last_seen_at__gte=timezone.now() - timedelta(seconds=5)
        )
        for row in recent.order_by("-started_at"):
            if "maintenance" in row.queues:
                return row
        time.sleep(0.1)
    raise AssertionError("the worker never reported itself:\n" + worker.text[-3000:])


def wait_until_reported(row: CeleryWorker, condition, worker, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row.refresh_from_db()
        if condition(row):
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker's report stayed {row.held_jobs}:\n{worker.text[-3000:]}")
