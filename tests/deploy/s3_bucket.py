"""An S3 bucket on a moto server, as the deploy suites see it: the environment a machine is given to
keep media there, and a boto3 view of its objects that bypasses Django storage."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass

import boto3

from tests.processes import OutputWatcher

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


def wait_for_moto(port: int, proc: subprocess.Popen, watcher: OutputWatcher, timeout: float = 30) -> None:
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
