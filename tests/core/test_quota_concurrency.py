"""Quotas under concurrency: parallel requests of one user at the edge of a quota admit exactly what
remains — through gunicorn with two worker processes of four threads, on this test's database
(SQLite or PostgreSQL, whichever the suite runs on)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests
import yaml
from django.conf import settings
from rest_framework.authtoken.models import Token

from generation.models import GenerationJob
from imagineer.celery import app as celery_app
from imagineer.core.models import UserQuota
from tests.factories import UserFactory, make_image
from tests.faults.workers import FaultDirs, WebServer, process_env
from tests.processes import test_database_url as database_url_of_this_test

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PARALLEL = 8
JOB = {"prompt": "edge", "steps": 2, "width": 64, "height": 64, "seed": 3}


@pytest.fixture
def web(media_root, runtime_config_file, tmp_path):
    dirs = FaultDirs(media=media_root, training=tmp_path / "training", config=runtime_config_file)
    dirs.training.mkdir()
    env = process_env(
        database_url=database_url_of_this_test(),
        broker_url=settings.CELERY_BROKER_URL,
        redis_url=settings.REDIS_URL,
        dirs=dirs,
        DEBUG="false",
        IMAGINEER_GENERATION_RATE="10000/m",
    )
    server = WebServer(env, workers=2, threads=PARALLEL // 2)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        with contextlib.suppress(Exception):  # the queued jobs' messages: no later test's worker gets them
            celery_app.control.purge()


def post_all_at_once(url: str, token: str, body: dict) -> list[int]:
    """PARALLEL requests released together; their status codes."""
    barrier = Barrier(PARALLEL)

    def send(_):
        with requests.Session() as session:
            session.headers["Authorization"] = f"Token {token}"
            session.get(url + "/healthz", timeout=30)  # connected before the barrier
            barrier.wait(timeout=30)
            return session.post(url + "/api/generation/jobs/", json=body, timeout=60).status_code

    with ThreadPoolExecutor(PARALLEL) as pool:
        return sorted(pool.map(send, range(PARALLEL)))


def test_parallel_requests_at_the_image_quota_admit_exactly_the_rest(tiny_model, web, runtime_config_file):
    runtime_config_file.write_text(
        yaml.safe_dump({"quotas": {"images_per_day": 5, "concurrent_jobs": None}}), encoding="utf-8"
    )
    user = UserFactory()
    UserQuota.objects.create(user=user)
    for _ in range(2):
        make_image(is_public=False, user=user)  # 2 of 5 used: 3 remain
    codes = post_all_at_once(web.url, Token.objects.create(user=user).key, JOB)
    assert codes == [202] * 3 + [429] * (PARALLEL - 3), codes
    assert GenerationJob.objects.filter(created_by=user).count() == 3


def test_parallel_requests_at_the_jobs_at_once_quota_admit_exactly_the_rest(tiny_model, web, runtime_config_file):
    runtime_config_file.write_text(
        yaml.safe_dump({"quotas": {"images_per_day": None, "concurrent_jobs": 3}}), encoding="utf-8"
    )
    user = UserFactory()  # no UserQuota row yet: the first requests create it side by side
    codes = post_all_at_once(web.url, Token.objects.create(user=user).key, {**JOB, "count": 2})
    assert codes == [202] * 3 + [429] * (PARALLEL - 3), codes
    assert GenerationJob.objects.filter(created_by=user).count() == 3
