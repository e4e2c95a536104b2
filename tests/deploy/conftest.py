"""S3-compatible storage for tests: a real moto server process on 127.0.0.1, one bucket per test.

`s3_bucket` gives the variables a deployment sets (IMAGINEER_STORAGE=s3 and the AWS ones); the
`s3_media` fixture points this test process's media storage at that bucket through the same
settings code (imagineer.core.storage), and a worker started with `s3_bucket.env` uses it too.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import environ
import pytest

from imagineer.core.storage import media_storage
from tests.deploy.s3_bucket import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Bucket, wait_for_moto
from tests.processes import OutputWatcher, free_port, stop_process


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server process (one per test session, buckets per test)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watcher = OutputWatcher(proc)
    try:
        wait_for_moto(port, proc, watcher)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, grace=10)


@pytest.fixture
def s3_bucket(moto_server) -> Bucket:
    bucket = Bucket(name=f"imagineer-test-{uuid.uuid4().hex[:12]}", endpoint_url=moto_server)
    bucket.client().create_bucket(Bucket=bucket.name)
    return bucket


@pytest.fixture
def s3_media(s3_bucket, settings, monkeypatch) -> Bucket:
    """This process stores media in the test's bucket, configured as a deployment would configure it."""
    for name, value in s3_bucket.env.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "default": media_storage(environ.Env())}
    settings.AWS_ACCESS_KEY_ID = ACCESS_KEY_ID
    settings.AWS_SECRET_ACCESS_KEY = SECRET_ACCESS_KEY
    return s3_bucket
