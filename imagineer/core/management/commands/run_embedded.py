"""`manage.py run_embedded`: web + Celery worker + Celery beat on one machine, stopped together.

This is what `make run` starts. It runs on the embedded defaults (SQLite, filesystem broker, local
media under IMAGINEER_DATA_DIR) unless the environment says otherwise. Ctrl-C (SIGINT) or SIGTERM
stops all three; if any one of them dies, the others are stopped too and the exit status is non-zero.
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

from imagineer.celery import QUEUES

STOP_GRACE_SECONDS = 15
PASSWORD_FILE = "initial-admin-password.txt"


class Command(BaseCommand):
    help = "Run web server, Celery worker and Celery beat together (the embedded deployment)."

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
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children = {
            "web": [python, manage, "runserver", f"{host}:{port}", "--noreload"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "imagineer",
                "worker",
                "--loglevel",
                "INFO",
                "-Q",
                ",".join(QUEUES),
                "--concurrency",
                str(settings.CELERY_WORKER_CONCURRENCY),
                "--hostname",
                "embedded@%h",
            ],
            "beat": [python, "-m", "celery", "-A", "imagineer", "beat", "--loglevel", "INFO"],
        }
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
            "\nImagineer is running (web + worker + beat). Ctrl-C stops all three.\n"
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
                _signal_group(proc, signal.SIGTERM)
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
        self.stdout.write("Stopped web, worker and beat.")

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
