"""`manage.py run_embedded`: web, two Celery workers and Celery beat on one machine, stopped together.

This is what `make run` starts. It runs on the embedded defaults (SQLite, filesystem broker, local
media under IMAGINEER_DATA_DIR) unless the environment says otherwise. The workers are split as in
the deployment examples (docs/deployment/CELERY.md): the GPU queues in a worker of their own with
one pool process, because one GPU runs one pipeline at a time and a second process would hold a
second copy of the model; every other queue in a light worker with IMAGINEER_WORKER_CONCURRENCY
processes, so thumbnails and the maintenance sweeps never wait behind a generation job.
Ctrl-C (SIGINT) or SIGTERM stops them all; if any one of them dies, the others are stopped too and
the exit status is non-zero.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from imagineer.celery import GPU_QUEUES, QUEUES

STOP_GRACE_SECONDS = 15
PASSWORD_FILE = "initial-admin-password.txt"


def embedded_processes(host: str, port: int) -> dict[str, list[str]]:
    """The command line of each child `make run` starts, by the name its messages use."""
    python = sys.executable
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    # Derived from QUEUES, so a queue added later is consumed by the light worker, not by nobody.
    light_queues = [queue for queue in QUEUES if queue not in GPU_QUEUES]
    return {
        "web": [python, manage, "runserver", f"{host}:{port}", "--noreload"],
        "GPU worker": _worker_command(GPU_QUEUES, concurrency=1, node="gpu@%h"),
        "light worker": _worker_command(light_queues, concurrency=settings.CELERY_WORKER_CONCURRENCY, node="light@%h"),
        "beat": [python, "-m", "celery", "-A", "imagineer", "beat", "--loglevel", "INFO"],
    }


def _worker_command(queues, *, concurrency: int, node: str) -> list[str]:
    # prefork: the pool that enforces the per-queue time limits (solo and threads ignore them).
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "imagineer",
        "worker",
        "--loglevel",
        "INFO",
        "-Q",
        ",".join(queues),
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        node,
    ]


class Command(BaseCommand):
    help = "Run web server, Celery workers (GPU queues, light queues) and Celery beat together (embedded deployment)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("IMAGINEER_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("IMAGINEER_PORT", "8000")))
        parser.add_argument("--no-migrate", action="store_true", help="Skip applying migrations first.")

    def handle(self, *args, host: str, port: int, no_migrate: bool, **options):
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        sign_in = self._ensure_admin_user()
        # So a fresh offline install can generate (generation's command: core never imports generation).
        call_command("create_tiny_model", name="tiny-sd", stdout=io.StringIO())
        children = embedded_processes(host, port)
        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        for name, command in children.items():
            # Own process group each, so a stop reaches every process a child started.
            processes[name] = subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)

        base = f"http://{host}:{port}"
        self.stdout.write(
            "\nImagineer is running (web + GPU worker + light worker + beat). Ctrl-C stops them all.\n"
            f"  Admin:    {base}/admin/\n"
            f"  Sign in:  {sign_in}\n"
            f"  API:      {base}/api/   docs: {base}/api/docs/\n"
            f"  Health:   {base}/healthz  {base}/readyz\n"
        )
        self.stdout.flush()

        exit_code = 0
        while not stopping:
            for name, proc in processes.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with status {proc.returncode}; stopping the others.")
                    exit_code = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.5)
        self._stop_all(processes)
        if exit_code:
            sys.exit(exit_code)

    def _stop_all(self, processes: dict[str, subprocess.Popen]) -> None:
        for proc in processes.values():
            if proc.poll() is None:
                # To the main process only: a worker's warm shutdown lets its running task finish and
                # marks its report stopped; signalled as a group, its pool processes would die at once.
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        # Children may have left grandchildren (worker pool processes) in their groups.
        for proc in processes.values():
            _signal_group(proc, signal.SIGKILL)
        self.stdout.write("Stopped web, workers and beat.")

    def _ensure_admin_user(self) -> str:
        """Make sure someone can sign in to a fresh install; say how."""
        User = get_user_model()
        password_file = Path(settings.DATA_DIR) / PASSWORD_FILE
        google = (
            "or 'Sign in with Google' at /accounts/google/login/ (addresses in IMAGINEER_ADMIN_EMAILS become admins)"
        )
        if User.objects.filter(is_superuser=True).exists():
            if password_file.exists():
                return f"user 'admin', password in {password_file} (change it in admin, then delete the file), {google}"
            return f"an existing admin account, {google}"
        password = secrets.token_urlsafe(18)
        User.objects.create_superuser(username="admin", email="", password=password)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        return f"user 'admin', password in {password_file} (change it in admin, then delete the file), {google}"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
