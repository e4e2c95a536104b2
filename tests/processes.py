"""Helpers for tests that start real processes (Celery worker, the embedded runner)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
CONFIG_VARS = (
    "IMAGINEER_",
    "DATABASE_URL",
    "CELERY_",
    "REDIS_URL",
    "MEDIA_ROOT",
    "SECRET_KEY",
    "DEBUG",
    "DJANGO_SETTINGS_MODULE",
)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_VARS)}
    env.update({"DJANGO_SETTINGS_MODULE": "imagineer.settings", "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "console"})
    env.update(extra)
    return env


def test_database_url() -> str:
    """A DATABASE_URL that points another process at the database this test is using."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OutputWatcher:
    """Collects a process's output in a thread; wait_for() blocks until a text appears."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    @property
    def text(self) -> str:
        return "".join(self.lines)


def wait_serving(url: str, proc: subprocess.Popen, output: OutputWatcher, timeout: float = 90):
    """Poll `url` until it answers 200 (returned); fail with the server's output if it exits or never does."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{output.text[-3000:]}")
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or still loading the app on a busy machine
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s:\n{output.text[-3000:]}")


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, up to `grace` seconds to shut down, then SIGKILL to it and anything it started."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    kill_tree(proc)


def kill_tree(proc: subprocess.Popen) -> None:
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in [*family]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def celery_worker(
    *,
    queues: str = "default,maintenance",
    media_root: Path,
    extra_env: dict[str, str] | None = None,
    hostname: str | None = None,
) -> Iterator[OutputWatcher]:
    """A real `celery -A imagineer worker` on this test's database, broker, media folder and runtime config.

    extra_env adds variables or replaces the defaults below; hostname is the node name (`--hostname`).
    """
    defaults = {
        "IMAGINEER_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(media_root),
        "IMAGINEER_CONFIG": str(settings.IMAGINEER_CONFIG),
        "IMAGINEER_SCRATCH_DIR": str(settings.IMAGINEER_SCRATCH_DIR),
        "IMAGINEER_SCRAPE_ALLOWED_HOSTS": ",".join(settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS),
        "IMAGINEER_JOB_HEARTBEAT_SECONDS": "1",
    }
    env = base_env(**{**defaults, **(extra_env or {})})
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "imagineer",
        "worker",
        "--loglevel",
        "INFO",
        "-Q",
        queues,
        "--concurrency",
        "1",
        "--hostname",
        hostname or f"test-{uuid.uuid4().hex[:8]}@%h",
        "--purge",
        "--without-mingle",
        "--without-gossip",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = OutputWatcher(proc)
    try:
        if not watcher.wait_for("ready", timeout=90):
            raise AssertionError("Celery worker did not become ready:\n" + watcher.text[-3000:])
        yield watcher
    finally:
        stop_process(proc)


def wait_for_final_job(job, timeout: float = 90, worker: OutputWatcher | None = None):
    """Poll a job row until a worker process has ended it (succeeded, failed or cancelled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_final:
            return job
        time.sleep(0.25)
    tail = "\n" + worker.text[-3000:] if worker is not None else ""
    raise AssertionError(f"job still {job.status} after {timeout}s{tail}")
