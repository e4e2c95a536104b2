"""PostgreSQL or Redis gone for a few seconds while jobs run: the API answers 503 in the envelope
with Retry-After, /readyz says not ready, and afterwards the same web and worker processes work
again; every job sent before or during the outage ends exactly once.

The services themselves are never touched: a proxy (tests/faults/proxy.py) between them and the
web server (gunicorn, persistent connections as in production) and the worker is cut and restored.
"""

import time

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from albums.models import Image, ThumbnailJob
from generation.models import GenerationJob
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.factories import make_image
from tests.faults.backends import redis_urls, uses_postgres
from tests.faults.helpers import media_and_rows_agree, wait_final, wait_until
from tests.faults.proxy import TcpProxy
from tests.faults.workers import WebServer, wait_for_event

# One xdist process runs them all (with --dist loadgroup): they share one worker, started once.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("faults")]

needs_postgres = pytest.mark.skipif(
    not uses_postgres(),
    reason="The database is a SQLite file on this run: it cannot go away as a server can. The PostgreSQL run covers it.",
)
needs_redis = pytest.mark.skipif(
    not redis_urls(), reason="No Redis on this run (filesystem broker, local-memory cache): nothing to cut."
)
OUTAGE_SECONDS = 3
# A job still denoising when a database outage ends (the most steps a job may ask, at 96 px: about
# 8 s on the 2-core CI machine); any longer and a store of its image would fall into the outage.
LONG_JOB = {"steps": 150, "width": 96, "height": 96}


class Api:
    def __init__(self, base: str, token: str, session: str):
        self.base, self.headers, self.session = base, {"Authorization": f"Token {token}"}, session

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers=self.headers, timeout=30)

    def get_signed_in(self, path: str) -> requests.Response:
        """As a browser signed in to admin: the session is loaded from the database, also by middleware."""
        return requests.get(self.base + path, cookies={"sessionid": self.session}, timeout=30)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return requests.post(self.base + path, json=body or {}, headers=self.headers, timeout=30)


def assert_unavailable(response: requests.Response, code: str) -> dict:
    """A 503 in the one error envelope, with Retry-After: no traceback, no HTML."""
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "trace_id", "timestamp"}
    assert error["code"] == code and error["trace_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.text and "/" not in error["message"]
    return error


@pytest.fixture(scope="module")
def web(backends, fault_dirs):
    # DEBUG off, as in production: Django would otherwise answer an error outside DRF with its
    # technical page instead of the envelope.
    server = WebServer(backends.env(fault_dirs, "web", DEBUG="false"))
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def api(web, admin_user):
    browser = Client()
    browser.force_login(admin_user)
    return Api(web.url, Token.objects.create(user=admin_user).key, browser.cookies["sessionid"].value)


def generate(api: Api, **parameters) -> GenerationJob:
    response = api.post("/api/generation/jobs/", {"prompt": "through the outage", "seed": 5, **parameters})
    assert response.status_code == 202, response.text
    return GenerationJob.objects.get(pk=response.json()["id"])


def wait_denoising(job, worker) -> None:
    def denoising():
        job.refresh_from_db()
        return job.status == JobStatus.RUNNING and job.progress_current > 0

    wait_until(denoising, 180, lambda: f"never denoising:\n{worker.watcher.text[-3000:]}", interval=0.05)


def assert_ran_once(job, worker) -> None:
    wait_final(job, worker)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1), job.error_message
    assert job.images.count() == job.count


@needs_postgres
def test_database_outage_answers_503_and_every_job_ends_once(api, web, worker, backends, tiny_model, media_root):
    running = generate(api, **LONG_JOB)
    wait_denoising(running, worker)
    queued = generate(api, steps=3)  # waits in the queue behind the running one

    for proxy in backends.database_proxies.values():
        proxy.cut()
    try:
        assert_unavailable(api.get("/api/generation/jobs/"), "database_unavailable")
        assert_unavailable(api.get_signed_in("/api/generation/jobs/"), "database_unavailable")
        refused = assert_unavailable(
            api.post("/api/generation/jobs/", {"prompt": "x", "steps": 3}), "database_unavailable"
        )
        ready = requests.get(web.url + "/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["error"]["details"]["checks"]["database"] == "unavailable"
        time.sleep(OUTAGE_SECONDS)
    finally:
        for proxy in backends.database_proxies.values():
            proxy.restore()

    # The same gunicorn process: its next request connects afresh.
    assert api.get("/api/generation/jobs/").status_code == 200
    assert requests.get(web.url + "/readyz", timeout=30).status_code == 200
    assert_ran_once(running, worker)
    assert_ran_once(queued, worker)
    assert GenerationJob.objects.count() == Image.objects.count() == 2, refused  # the refused request: nothing
    assert media_and_rows_agree(media_root) == (set(), set())


@needs_postgres
def test_job_delivered_while_the_worker_cannot_reach_the_database_is_not_lost(
    api, worker, backends, tiny_model, media_root
):
    """The worker's side of the outage starts first: the message arrives, the claim cannot be made.
    Acknowledged then, the message would be gone and the job queued forever."""
    backends.database_proxies["worker"].cut()
    try:
        job = generate(api, steps=3)  # the web server's database still answers
        assert worker.watcher.wait_for(f"[{job.celery_task_id}] received", 60), worker.watcher.text[-3000:]
        time.sleep(OUTAGE_SECONDS)
    finally:
        backends.database_proxies["worker"].restore()
    assert_ran_once(job, worker)


@needs_postgres
def test_job_ending_while_the_worker_cannot_reach_the_database_fails_with_the_reason(
    api, worker, backends, tiny_model, media_root
):
    """Its image cannot be stored, so the job fails; the failure itself waits for the database,
    lands once it is back, and says why. Nothing half-stored remains; the retry runs it."""
    job = generate(api, steps=40)
    wait_denoising(job, worker)
    backends.database_proxies["worker"].cut()
    try:
        wait_for_event(worker.watcher, "job.failed", 60, job_id=job.pk)  # storing its image failed
        time.sleep(1)  # and so does recording that, for now
    finally:
        backends.database_proxies["worker"].restore()
    wait_final(job, worker)
    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert job.error_message == "The database could not be reached while the job ran (OperationalError). Retry the job."
    assert job.images.count() == 0 and media_and_rows_agree(media_root) == (set(), set())
    jobs.retry_job(job)
    wait_final(job, worker)
    assert (job.status, job.attempts, job.images.count()) == (JobStatus.SUCCEEDED, 2, 1), job.error_message


@needs_postgres
def test_heartbeat_goes_on_after_a_database_outage(backends):
    """The side thread that keeps a long step's heartbeat fresh must outlive the outage, or a healthy
    job is reaped once the database is back."""
    job = ThumbnailJob.objects.create()
    claimed = jobs.claim_job(ThumbnailJob, job.pk)
    upstream = connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)
    proxy = TcpProxy(*upstream).start()
    direct = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    # New connections (the heartbeat thread's) go through the proxy; this thread's stays direct.
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", str(proxy.port)
    try:
        with jobs.heartbeat(claimed, interval=0.2):
            wait_until(lambda: proxy.accepted, 10, "the heartbeat thread never connected")
            proxy.cut()
            time.sleep(1.0)
            restored_at = timezone.now()
            proxy.restore()
            time.sleep(1.5)
    finally:
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = direct
        proxy.stop()
    job.refresh_from_db()
    assert job.heartbeat_at > restored_at


@needs_redis
def test_redis_outage_answers_503_where_redis_is_needed_and_every_job_ends_once(
    api, web, worker, backends, tiny_model, media_root
):
    running = generate(api, steps=40)
    wait_denoising(running, worker)
    queued = generate(api, steps=3)  # in the broker's queue behind the running one
    image = make_image()

    backends.redis_proxy.cut()
    try:
        assert api.get("/api/generation/jobs/").status_code == 200  # reading needs only the database
        assert_unavailable(api.post("/api/generation/jobs/", {"prompt": "x", "steps": 3}), "cache_unavailable")
        error = assert_unavailable(
            api.post("/api/images/rebuild-thumbnails/", {"image_ids": [image.pk]}), "queue_unavailable"
        )
        ready = requests.get(web.url + "/readyz", timeout=30)
        checks = ready.json()["error"]["details"]["checks"]
        assert ready.status_code == 503 and checks["broker"] == checks["cache"] == "unavailable", checks
        time.sleep(OUTAGE_SECONDS)  # the running job may end meanwhile: only its acknowledgement needs Redis
    finally:
        backends.redis_proxy.restore()

    wait_until(lambda: requests.get(web.url + "/readyz", timeout=30).status_code == 200, 30, "never ready again")
    assert_ran_once(running, worker)  # the worker reconnected; the job was not run again
    assert_ran_once(queued, worker)  # sent before the outage, delivered after it
    unsent = ThumbnailJob.objects.get(pk=error["details"]["job_id"])
    assert unsent.status == JobStatus.FAILED and "could not be reached" in unsent.error_message
    jobs.retry_job(unsent)
    wait_final(unsent, worker)
    assert (unsent.status, unsent.attempts) == (JobStatus.SUCCEEDED, 1), unsent.error_message
    assert GenerationJob.objects.count() == 2 and Image.objects.count() == 3  # their two and the thumbnailed one
    assert media_and_rows_agree(media_root) == (set(), set())
