"""Real processes for the fault tests: a Celery worker that can be killed whole or in part, a web server.

The worker runs in a session (process group) of its own, so `kill_group` is what a `kill -9` of
the worker's group does (systemd's KillMode=mixed on its final SIGKILL, a supervisor killing the
group): the worker's main and pool processes die, while a trainer, which starts a session of its
own, is left to notice by itself. `kill_pool` is what the kernel's OOM killer does to the biggest
process (the pool process holding the model); `kill_tree` is a lost machine or cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil

from tests.processes import ROOT, OutputWatcher, base_env, free_port, kill_tree, stop_process, wait_serving

# Generation one image per pass, so a job of two images has stored its first while the second is
# still being denoised; training on four captioned images.
RUNTIME_CONFIG = {
    "generation": {"max_batch": 1},
    "training": {"min_captioned_images": 4},
    # Bursts of jobs from plain users prove the lifecycle, not the quotas (tests/core/test_quotas.py).
    "quotas": {"images_per_day": None, "concurrent_jobs": None, "gpu_seconds_per_day": None},
}
# New legacy images whose rows are written per transaction: small, so a kill can fall between
# the files of a batch and its rows.
LEGACY_BATCH = 20
WORKER_QUEUES = "generation,training,maintenance,default"


def log_events(watcher: OutputWatcher) -> list[dict]:
    """The JSON log lines a process printed (LOG_FORMAT=json), parsed; other output is skipped."""
    events = []
    for line in list(watcher.lines):
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def wait_for_event(watcher: OutputWatcher, event: str, timeout: float, **fields) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in log_events(watcher):
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry
        time.sleep(0.1)
    raise AssertionError(f"no {event} {fields} within {timeout}s:\n{watcher.text[-3000:]}")


def spawn(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, OutputWatcher]:
    """Start a process of the project in a session of its own (so its whole group can be killed),
    its output collected."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    return proc, OutputWatcher(proc)


class Worker:
    """`celery -A imagineer worker` (prefork, one pool process) with this test's settings in `env`.

    `extra_args` go on its command line after the defaults (`--prefetch-multiplier 4`).
    """

    # Every worker this test process started, while it lives: a test that needs the broker's queues
    # to itself stops the others (the package's shared worker, which the `worker` fixture restarts).
    started: ClassVar[weakref.WeakSet[Worker]] = weakref.WeakSet()

    def __init__(self, env: dict[str, str], queues: str, extra_args: Sequence[str] = ()):
        self.env, self.queues, self.extra_args = env, queues, tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.watcher: OutputWatcher | None = None
        self.name = f"faults-{uuid.uuid4().hex[:8]}@%h"

    def start(self, *, purge: bool = False, timeout: float = 120) -> Worker:
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
            self.queues,
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "--hostname",
            self.name,
            "--without-mingle",
            "--without-gossip",
            *(["--purge"] if purge else []),
            *self.extra_args,
        ]
        self.proc, self.watcher = spawn(command, self.env)
        Worker.started.add(self)
        if not self.watcher.wait_for("ready", timeout=timeout):
            self.stop()
            raise AssertionError("Celery worker did not become ready:\n" + self.watcher.text[-3000:])
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pool_pid(self, timeout: float = 30) -> int:
        """The pool process (the one that runs tasks); a fresh one after the last was killed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = [c for c in psutil.Process(self.proc.pid).children() if c.status() != psutil.STATUS_ZOMBIE]
            if children:
                return children[0].pid
            time.sleep(0.1)
        raise AssertionError("the worker has no pool process")

    def kill_pool(self) -> int:
        pid = self.pool_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_group(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def kill_tree(self) -> None:
        kill_tree(self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        kill_tree(self.proc)  # the tests are done with it: no shutdown to wait for
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything of its group still there


class WebServer:
    """gunicorn, one sync worker by default: it keeps its database connection between requests, as in
    production. `workers` and `threads` (gthread) serve several clients at once."""

    def __init__(self, env: dict[str, str], *, workers: int = 1, threads: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "imagineer.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            *(["--threads", str(threads)] if threads > 1 else []),
            "--timeout",
            "60",
            "--access-logfile",
            "-",
        ]
        self.proc, self.watcher = spawn(command, env)

    def wait_ready(self, timeout: float = 90) -> None:
        wait_serving(f"{self.url}/healthz", self.proc, self.watcher, timeout)

    def stop(self) -> None:
        stop_process(self.proc)


class Beat:
    """`celery -A imagineer beat` (the DatabaseScheduler of the settings) with this test's settings in `env`."""

    def __init__(self, env: dict[str, str]):
        command = [sys.executable, "-m", "celery", "-A", "imagineer", "beat", "--loglevel", "INFO"]
        self.proc, self.watcher = spawn(command, env)

    def stop(self) -> None:
        stop_process(self.proc)


def forget_unacknowledged_messages() -> None:
    """Redis keeps the messages of killed workers as unacknowledged and hands them out again an hour
    later: to a worker of some later test run, which would claim that run's job of the same id."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("redis://"):
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("unacked", "unacked_index", "unacked_mutex")


@dataclass(frozen=True)
class FaultDirs:
    """Folders the fault tests share with the worker they keep running: media, training, config."""

    media: Path
    training: Path
    config: Path


def process_env(*, database_url: str, broker_url: str, redis_url: str, dirs: FaultDirs, **extra: str) -> dict:
    """The environment of a worker or web process on this test's database, broker and folders."""
    from django.conf import settings

    env = base_env(
        IMAGINEER_DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        MEDIA_ROOT=str(dirs.media),
        IMAGINEER_CONFIG=str(dirs.config),
        IMAGINEER_SCRATCH_DIR=str(settings.IMAGINEER_SCRATCH_DIR),
        IMAGINEER_TRAINING_DIR=str(dirs.training),
        IMAGINEER_JOB_HEARTBEAT_SECONDS="1",
        LOG_FORMAT="json",
        **extra,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env
