"""A real web server process (`manage.py runserver`) on this test's database, broker and media."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.processes import ROOT, OutputWatcher, base_env, free_port, stop_process, test_database_url, wait_serving


@dataclass
class WebServer:
    url: str
    proc: subprocess.Popen
    output: OutputWatcher

    def wait_ready(self, timeout: float = 90) -> None:
        wait_serving(f"{self.url}/healthz", self.proc, self.output, timeout)


@contextmanager
def web_server(*, media_root: Path, extra_env: dict[str, str] | None = None) -> Iterator[WebServer]:
    """`manage.py runserver --noreload` on 127.0.0.1:<free port>, on this test's database, broker and media.

    Yields as soon as the process is started, so it can boot while a worker does: call wait_ready().
    `extra_env` adds settings of the test's own (e.g. IMAGINEER_CORS_ALLOWED_ORIGINS); the tests'
    IMAGINEER_* environment never reaches the server otherwise.
    """
    port = free_port()
    env = base_env(
        IMAGINEER_DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        MEDIA_ROOT=str(media_root),
        IMAGINEER_CONFIG=str(settings.IMAGINEER_CONFIG),
        IMAGINEER_SCRATCH_DIR=str(settings.IMAGINEER_SCRATCH_DIR),
        **({"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}),
        **(extra_env or {}),
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield WebServer(url=f"http://127.0.0.1:{port}", proc=proc, output=OutputWatcher(proc))
    finally:
        stop_process(proc)
