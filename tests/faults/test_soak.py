"""Soak: eight clients send about a hundred generation jobs to a real web server; mid-burst the GPU
worker's whole process group is SIGKILLed (a machine dying, the OOM killer taking the main process)
and a new worker starts. Within a bounded time every job is final, failed ones say why and are retried
to success through the API (`retry/`), no job runs twice, every job ends with exactly its images,
and media and rows agree.

The GPU worker prefetches (concurrency 1, prefetch multiplier 4), so at the kill it holds one job
running and more reserved but unclaimed: messages that die with it while their jobs say `queued`.
The sweep (beat, `maintenance` queue, imagineer.core.jobs.resend_lost_jobs) finds them in the dead
worker's last report and sends them again; the reaper fails the job that was running.

Both backends run this same test, and differ in what the dead worker held and where it went:
- SQLite + filesystem broker (first pass of .ci/run): the worker holds at most one message beyond
  the running one (kombu's filesystem transport fetches no further ahead, whatever the prefetch),
  and the transport deletes a message's file when a worker fetches it, so the held messages are
  gone for good; only the sweep's new message runs those jobs.
- PostgreSQL + Redis (second pass): the worker holds four (one running, three reserved). Redis
  keeps the dead worker's messages as unacknowledged and would hand them out again after its
  visibility timeout (an hour), to find the jobs claimed and do nothing; the sweep does not wait
  for that. Those messages are removed after the test so that no later test's worker receives them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests
import yaml
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from rest_framework.authtoken.models import Token

from generation.models import GenerationJob
from imagineer.celery import app as celery_app
from imagineer.core.models import FINAL_STATUSES, CeleryWorker, JobStatus
from imagineer.core.workers import job_key
from tests.factories import UserFactory
from tests.faults.helpers import media_and_rows_agree, wait_until
from tests.faults.workers import (
    RUNTIME_CONFIG,
    Beat,
    FaultDirs,
    WebServer,
    Worker,
    forget_unacknowledged_messages,
    log_events,
    process_env,
)
from tests.processes import test_database_url as database_url_of_this_test

# A group of its own: it starts its own processes and must not wait behind the `faults` group.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("soak")]

CLIENTS = 8
JOBS_PER_CLIENT = 12
SEND_PAUSE_SECONDS = 1.0  # between one client's jobs: the clients are still sending around the kill
FAST_STEPS = 2
# The kill falls into one of these jobs' denoising, never between an image's files and its row
# (that window is the orphaned-media retention's, docs/JOBS.md): 100 steps of 64 px take 2 s or
# more per image (max_batch 1), against progress written every 0.5 s.
SLOW_STEPS = 100
SLOW_JOBS = {(0, 2), (5, 4), (3, 6)}  # (client, its nth job)
JOB_TASK = GenerationJob.task_name
GPU_QUEUES, GPU_ARGS = "generation", ("--prefetch-multiplier", "4")
# The lifecycle's clock, fast: sweep and reaper every 1.5 s, a worker silent for 2.5 s is dead, a job
# sent 3 s ago that nobody holds is sent again, a running job without a heartbeat for 4 s is reaped.
# Re-sends at most IMAGINEER_JOB_MAX_RESENDS (3, the default): the new GPU worker is up within a
# few seconds, long before jobs queued meanwhile would be failed as "no worker consumes queue".
FAST_LIFECYCLE = {
    "IMAGINEER_JOB_SWEEP_SECONDS": "1.5",
    "IMAGINEER_JOB_RESEND_AFTER_SECONDS": "3",
    "IMAGINEER_WORKER_HEARTBEAT_SECONDS": "0.5",
    "IMAGINEER_WORKER_STALE_AFTER_SECONDS": "2.5",
    "IMAGINEER_JOB_STALE_AFTER_SECONDS": "4",
    # One torch thread: on two cores shared with other tests, torch's own thread pool waits on
    # itself (a 2-step job took 4 s beside one busy process, and the burst missed its bound).
    "OMP_NUM_THREADS": "1",
}  # and a job's heartbeat every second (process_env)
FINAL_WITHIN_SECONDS = 90  # after the kill: every job final (about 40 s on the 2-core CI machine)


class SoakClient:
    """One user with a DRF token, sending jobs to the web server from a thread of its own."""

    def __init__(self, number: int, base_url: str):
        self.number, self.base_url = number, base_url
        self.session = requests.Session()
        token = Token.objects.create(user=UserFactory()).key
        self.session.headers["Authorization"] = f"Token {token}"
        self.sent: list[int] = []
        self.stopped = threading.Event()  # the test failed: send no more

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.session.post(self.base_url + path, json=body or {}, timeout=30)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=30)

    def send_jobs(self) -> list[int]:
        for n in range(JOBS_PER_CLIENT):
            slow = (self.number, n) in SLOW_JOBS
            body = {
                "prompt": f"soak {self.number}.{n}",
                "seed": 1000 * self.number + n,
                "steps": SLOW_STEPS if slow else FAST_STEPS,
                "count": 2 if slow or n % 2 else 1,
                "width": 64,
                "height": 64,
            }
            response = self.post("/api/generation/jobs/", body)
            assert response.status_code == 202, (response.status_code, response.text[:500])
            self.sent.append(response.json()["id"])
            if self.stopped.wait(SEND_PAUSE_SECONDS):
                break
        return self.sent


@pytest.fixture
def broker_to_ourselves():
    """Stop the package's shared worker if this test process runs one: it would take this test's jobs
    from the same broker and database (the `worker` fixture starts it again for the next test)."""
    for other in list(Worker.started):
        if other.alive:
            other.stop()
    yield
    with contextlib.suppress(Exception):  # a broker gone at teardown has no messages to keep anyway
        celery_app.control.purge()  # re-sent duplicates nobody fetched, for no later test to receive
    forget_unacknowledged_messages()


def soak_env(dirs: FaultDirs, **extra: str) -> dict[str, str]:
    return process_env(
        database_url=database_url_of_this_test(),
        broker_url=settings.CELERY_BROKER_URL,
        redis_url=settings.REDIS_URL,
        dirs=dirs,
        **{**FAST_LIFECYCLE, **extra},
    )


def caught_mid_burst(gpu: Worker, futures: list[Future]):
    """The GPU worker runs a slow job mid-denoising and reports more jobs held than that one:
    (the running job's id, the job keys the worker's report lists), else None."""
    for future in futures:
        if future.done() and future.exception():
            raise future.exception()
    report = CeleryWorker.objects.filter(pid=gpu.proc.pid, stopped_at=None).first()
    if report is None or len(report.held_jobs) < 2:
        return None
    if GenerationJob.objects.filter(status=JobStatus.SUCCEEDED).count() < 4:
        return None
    running = GenerationJob.objects.filter(status=JobStatus.RUNNING, steps=SLOW_STEPS).first()
    if running is None or job_key(JOB_TASK, running.pk) not in report.held_jobs:
        return None
    # Early in one image's denoising, as of a progress write at most 0.6 s old: the kill comes long
    # before that image is stored.
    into_image = running.progress_current % SLOW_STEPS
    fresh = (timezone.now() - running.updated_at).total_seconds() < 0.6
    if not fresh or into_image > SLOW_STEPS * 0.3 or running.progress_current in (SLOW_STEPS, 2 * SLOW_STEPS):
        return None
    return running.pk, list(report.held_jobs)


def sweep_log(light: Worker) -> str:
    """What the sweep did: its job.resent and job.unclaimed lines."""
    lines = [json.dumps(e) for e in log_events(light.watcher) if e.get("event") in ("job.resent", "job.unclaimed")]
    return "sweep log:\n" + "\n".join(lines)


def outputs(*processes) -> str:
    return "\n".join(f"--- {name} ---\n{proc.watcher.text[-2500:]}" for name, proc in processes)


def test_every_job_ends_when_the_gpu_worker_is_killed_mid_burst(
    tiny_model, media_root, runtime_config_file, tmp_path, broker_to_ourselves
):
    runtime_config_file.write_text(yaml.safe_dump(RUNTIME_CONFIG), encoding="utf-8")
    dirs = FaultDirs(media=media_root, training=tmp_path / "training", config=runtime_config_file)
    dirs.training.mkdir()
    env = soak_env(dirs)
    started: list[Worker | WebServer | Beat] = []
    try:
        web = WebServer(
            soak_env(dirs, DEBUG="false", IMAGINEER_GENERATION_RATE="10000/m"), workers=2, threads=CLIENTS // 2
        )
        started.append(web)
        beat = Beat(env)
        started.append(beat)
        gpu = Worker(env, GPU_QUEUES, extra_args=GPU_ARGS)
        light = Worker(env, "maintenance,default")
        started += [gpu, light]
        with ThreadPoolExecutor(2) as starting:
            for ready in [starting.submit(gpu.start, purge=True), starting.submit(light.start, purge=True)]:
                ready.result()
        web.wait_ready()
        # Beat reaches the light worker through the broker: the sweep runs.
        assert light.watcher.wait_for("imagineer.core.tasks.resend_lost_jobs", 60), outputs(
            ("beat", beat), ("light worker", light)
        )

        clients = [SoakClient(number, web.url) for number in range(CLIENTS)]
        sending = ThreadPoolExecutor(CLIENTS)
        try:
            futures = [sending.submit(client.send_jobs) for client in clients]
            killed_job, held_at_kill = wait_until(
                lambda: caught_mid_burst(gpu, futures),
                120,
                lambda: (
                    "never caught a slow job mid-denoising with messages reserved:\n"
                    + outputs(("gpu worker", gpu), ("light worker", light))
                ),
            )
            gpu.kill_group()
            killed_at = time.monotonic()
            replacement = Worker(env, GPU_QUEUES, extra_args=GPU_ARGS)
            started.append(replacement)
            replacement.start()
            replacement_ready = time.monotonic() - killed_at
            sent = [job_id for future in futures for job_id in future.result(timeout=60)]
        finally:
            for client in clients:
                client.stopped.set()
            sending.shutdown(wait=True)
        assert len(sent) == CLIENTS * JOBS_PER_CLIENT

        def every_job_final():
            return not GenerationJob.objects.exclude(status__in=FINAL_STATUSES).exists()

        wait_until(
            every_job_final,
            max(1.0, killed_at + FINAL_WITHIN_SECONDS - time.monotonic()),
            lambda: (
                f"jobs not final {FINAL_WITHIN_SECONDS} s after the kill: "
                f"{Counter(GenerationJob.objects.values_list('status', flat=True))}, failed: "
                f"{list(GenerationJob.objects.filter(status=JobStatus.FAILED).values_list('pk', 'error_message'))}\n"
                + outputs(("new gpu worker", replacement), ("light worker", light), ("beat", beat))
            ),
            interval=0.25,
        )
        final_after_kill = time.monotonic() - killed_at

        # The job running at the kill was reaped, and says so; any other failure says why too.
        failed = list(GenerationJob.objects.filter(status=JobStatus.FAILED))
        assert killed_job in {job.pk for job in failed}
        for job in failed:
            assert job.error_message, job.pk
        reaped = GenerationJob.objects.get(pk=killed_job)
        assert reaped.error_message.startswith("The worker stopped responding"), reaped.error_message
        assert "Retry the job" in reaped.error_message

        # The messages the dead worker held unclaimed were sent again and their jobs ran: those the
        # report lists that had not ended before the kill (the report is up to 0.5 s old).
        unclaimed = {int(key.split("#")[1]) for key in held_at_kill} - {killed_job}
        assert unclaimed
        for job in GenerationJob.objects.filter(pk__in=unclaimed):
            assert job.status == JobStatus.SUCCEEDED, (job.pk, job.status, job.error_message, sweep_log(light))
        resent = GenerationJob.objects.filter(status=JobStatus.SUCCEEDED, resend_count__gte=1)
        assert resent.filter(pk__in=unclaimed).exists(), sweep_log(light)
        # A dead worker loses a message once: the message the sweep sent instead is not the one the
        # dead worker's report lists, so "its holder died" is no reason to send that job yet again.
        resends = [e for e in log_events(light.watcher) if e.get("event") == "job.resent"]
        holder_died = Counter(e["job_id"] for e in resends if e.get("reason") == "holder_died")
        assert set(holder_died) <= unclaimed, (sorted(unclaimed), sweep_log(light))
        assert [job for job, times in holder_died.items() if times > 1] == [], sweep_log(light)
        # Its owner sees it in the API: succeeded, sent again.
        owners = {job_id: client for client in clients for job_id in client.sent}
        example = resent.filter(pk__in=unclaimed).first()
        shown = owners[example.pk].get(f"/api/generation/jobs/{example.pk}/").json()
        assert (shown["status"], shown["resend_count"]) == ("succeeded", example.resend_count)

        # A failed job is retried through the API and succeeds: the same job, its images made once
        # (an image stored before the kill is the retry's first, same seed, same bytes).
        for job in failed:
            response = owners[job.pk].post(f"/api/generation/jobs/{job.pk}/retry/")
            assert response.status_code == 202, (response.status_code, response.text[:500])
        wait_until(
            every_job_final,
            60,
            lambda: "the retries did not end:\n" + outputs(("new gpu worker", replacement)),
            interval=0.25,
        )
        for job in failed:
            job.refresh_from_db()
            assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2), (job.pk, job.error_message)

        # No job ran twice (duplicates of a message find the claim taken: one attempt each, two for
        # the retried); every job succeeded with exactly its images; no file without its row, no row
        # without its file.
        retried = {job.pk for job in failed}
        attempts = dict(GenerationJob.objects.values_list("pk", "attempts"))
        assert {pk: n for pk, n in attempts.items() if n != (2 if pk in retried else 1)} == {}
        succeeded = GenerationJob.objects.filter(status=JobStatus.SUCCEEDED).annotate(made=Count("images"))
        assert succeeded.count() == CLIENTS * JOBS_PER_CLIENT
        assert [(job.pk, job.made) for job in succeeded if job.made != job.count] == []
        assert media_and_rows_agree(media_root) == (set(), set())
        summary = {
            "failed": len(failed),
            "resent_jobs": resent.count(),
            "resends": Counter(e.get("reason") for e in resends),
            "claim_skipped": sum(1 for e in log_events(replacement.watcher) if e.get("event") == "job.claim_skipped"),
            "replacement_ready_s": round(replacement_ready, 1),
            "final_after_kill_s": round(final_after_kill, 1),
        }
        print(json.dumps(summary))  # pytest -s: what the run did
    finally:
        for process in reversed(started):
            process.stop()
