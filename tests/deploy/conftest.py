"""S3-compatible storage for tests: a real moto server process on 127.0.0.1, one bucket per test.

`s3_bucket` gives the variables a deployment sets (IMAGINEER_STORAGE=s3 and the AWS ones); the
`s3_media` fixture points this test process's media storage at that bucket through the same
settings code (imagineer.core.storage), and a worker started with `s3_bucket.env` uses it too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import environ
import pytest

from imagineer.core.storage import media_storage
from tests.generation.conftest import tiny_lora, tiny_model  # noqa: F401 - fixtures the multi-machine test shares
from tests.processes import OutputWatcher, free_port, stop_process
from tests.training.conftest import captioned_album  # noqa: F401 - fixture the multi-machine test shares

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
# Long enough (12+ characters) that log redaction treats it as the secret it stands for.
SECRET_ACCESS_KEY = "moto-test-secret-not-a-real-key"


@dataclass(frozen=True)
class Bucket:
    name: str
    endpoint_url: str

    @property
    def env(self) -> dict[str, str]:
        """What a machine's environment file says to keep media in this bucket."""
        return {
            "IMAGINEER_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.name,
            "AWS_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            # Credentials are given: boto3 must never ask an instance metadata address (not loopback).
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def keys(self) -> set[str]:
        """Every object name in the bucket, listed by the S3 API itself (not through Django storage)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.name, Key=key)["Body"].read()


def _wait_for_port(port: int, proc: subprocess.Popen, watcher: OutputWatcher, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("moto server exited:\n" + watcher.text[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("moto server did not listen:\n" + watcher.text[-2000:])


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
        _wait_for_port(port, proc, watcher)
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
