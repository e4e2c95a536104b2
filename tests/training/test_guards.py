"""The trainer runs under guards: idle, wall clock, cancel, crash; each ends the run and cleans up."""

import threading
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from generation.models import DiffusionModel, Lora, ModelSource
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from training import logs
from training.models import TrainingRun
from training.services import runs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_run(settings, captioned_album, training_config, admin_user, monkeypatch):
    """A queued run whose trainer is tests/training/fake_trainer.py in the given mode."""
    settings.IMAGINEER_TRAINER_MODULE = "tests.training.fake_trainer"
    model = DiffusionModel.objects.create(
        name="fake-sd", source_type=ModelSource.DIFFUSERS_DIR, source="models/fake", family="sd1"
    )

    def make(mode: str, **config):
        monkeypatch.setenv("FAKE_TRAINER_MODE", mode)
        training_config(min_captioned_images=1, **config)
        album = captioned_album(1)
        return runs.start_training_run(
            user=admin_user, name=f"fake {mode}", albums=[album], model=model, parameters={"steps": 600}
        )

    return make


def scratch_of(run) -> list[Path]:
    return list((Path(settings.IMAGINEER_TRAINING_DIR) / "scratch").glob(f"run-{run.pk}-*"))


def wait_gone(pids, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_the_idle_guard_stops_a_hung_trainer_and_its_whole_group(fake_run, tmp_path, monkeypatch):
    pid_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_TRAINER_PIDS", str(pid_file))
    run = fake_run("hang", idle_limit_seconds=2, terminate_grace_seconds=1)
    started = time.monotonic()
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert "no progress for 2 s (idle limit)" in run.error_message
    assert time.monotonic() - started < 30
    trainer, grandchild = map(int, pid_file.read_text().split())
    assert wait_gone([trainer, grandchild]), "SIGTERM was ignored: the group must have been killed"
    assert run.trainer_pid is None and not scratch_of(run)
    lines = logs.read_log(run, 0).lines
    assert any("fake trainer (hang)" in line for line in lines)
    assert any("idle limit" in line for line in lines)
    assert not Lora.objects.exists()


def test_the_wall_clock_guard_stops_a_trainer_that_never_ends(fake_run):
    run = fake_run("stream", wall_clock_limit_seconds=2, idle_limit_seconds=60, terminate_grace_seconds=1)
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "wall-clock limit of 2 s" in run.error_message
    assert run.progress_current >= 1 and run.latest_loss == 0.5
    assert not scratch_of(run)


def test_the_wall_clock_guard_stays_below_the_celery_limit(settings, training_config):
    settings.CELERY_QUEUE_TIME_LIMITS = {**settings.CELERY_QUEUE_TIME_LIMITS, "training": (1000, 1100)}
    training_config(wall_clock_limit_seconds=5000)
    assert runs.effective_guards().wall_clock_seconds == 1000 - runs.CELERY_LIMIT_MARGIN_SECONDS
    training_config(wall_clock_limit_seconds=300)
    assert runs.effective_guards().wall_clock_seconds == 300


def test_the_default_guard_is_below_the_training_queue_limit():
    from imagineer.core.runtime_config import TrainingConfig

    soft, hard = settings.CELERY_QUEUE_TIME_LIMITS["training"]
    assert TrainingConfig().wall_clock_limit_seconds < soft < hard


def test_cancel_stops_a_running_trainer(fake_run):
    run = fake_run("slow", terminate_grace_seconds=2)
    worker = threading.Thread(target=jobs.run_job, args=(TrainingRun, run.pk, runs.run_training))
    worker.start()
    deadline = time.monotonic() + 30
    while TrainingRun.objects.get(pk=run.pk).progress_current < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = TrainingRun.objects.get(pk=run.pk).trainer_pid
    assert pid
    jobs.cancel_job(run)
    worker.join(timeout=30)
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED
    assert wait_gone([pid]) and run.trainer_pid is None and not scratch_of(run)


def test_a_crashing_trainer_fails_the_run_with_a_reason_and_no_paths(fake_run):
    run = fake_run("crash")
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert "the trainer exited with code 1" in run.error_message
    lines = logs.read_log(run, 0).lines
    assert any("CUDA out of memory in <path>" in line for line in lines)
    assert not any("/var/lib" in line or "/opt/models" in line for line in lines)
    assert not scratch_of(run) and not Lora.objects.exists()


def test_a_retried_run_keeps_the_earlier_attempts_log(fake_run):
    run = fake_run("crash")
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    first = logs.read_log(TrainingRun.objects.get(pk=run.pk), 0)
    runs.retry_training_run(TrainingRun.objects.get(pk=run.pk))
    jobs.run_job(TrainingRun, run.pk, runs.run_training)
    run.refresh_from_db()
    whole = logs.read_log(run, 0)
    assert whole.lines[: len(first.lines)] == first.lines
    assert any("=== attempt 2" in line for line in whole.lines)
    newer = logs.read_log(run, first.next_offset)
    assert newer.lines == whole.lines[len(first.lines) :] and newer.next_offset == whole.next_offset


def test_the_trainer_exits_when_its_worker_is_killed():
    import os
    import signal
    import subprocess
    import sys

    from tests.processes import ROOT

    trainer_code = "from training.trainer import watch_parent; import time; watch_parent(); time.sleep(120)"
    worker_code = (  # the supervisor names itself to the trainer, as training/supervisor.py does
        "import os, subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', {trainer_code!r}], "
        "env={**os.environ, 'IMAGINEER_SUPERVISOR_PID': str(os.getpid())}); "
        "print(child.pid, flush=True); time.sleep(120)"
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    trainer_pid = int(worker.stdout.readline())
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert wait_gone([trainer_pid], timeout=10), "an orphaned trainer must stop on its own"


def test_the_trainer_gets_no_credentials_in_its_environment(monkeypatch):
    for name, value in {
        "DATABASE_URL": "postgres://u:pw@db/x",
        "SECRET_KEY": "s",
        "ANTHROPIC_API_KEY": "k",
        "EMAIL_URL": "smtp://a:b@c",
        "CELERY_BROKER_URL": "redis://:pw@r",
        "IMAGINEER_ALERT_WEBHOOK_URL": "https://hooks/x",
        "AWS_SECRET_ACCESS_KEY": "a",
        "HF_TOKEN": "hf_keep",
        "CUDA_VISIBLE_DEVICES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    env = runs.trainer_env()
    assert (env["HF_TOKEN"], env["CUDA_VISIBLE_DEVICES"], env["PYTHONUNBUFFERED"]) == ("hf_keep", "0", "1")
    assert "PATH" in env
    for dropped in (
        "DATABASE_URL",
        "SECRET_KEY",
        "ANTHROPIC_API_KEY",
        "EMAIL_URL",
        "CELERY_BROKER_URL",
        "IMAGINEER_ALERT_WEBHOOK_URL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert dropped not in env


def test_a_reaped_attempts_late_progress_leaves_the_retrys_loss_and_device_alone(fake_run, tmp_path):
    """The progress handler writes loss and device in the claim-checked progress update: a trainer
    whose attempt was reaped and retried elsewhere changes nothing of the new attempt's row."""
    from datetime import timedelta

    from django.utils import timezone

    run = fake_run("stream")
    first_claim = jobs.claim_job(TrainingRun, run.pk)
    handler = runs._RunProgress(first_claim, tmp_path)
    handler({"event": "started", "device": "cuda", "total": 600})
    handler({"event": "step", "step": 1, "total": 600, "loss": 0.25})
    run.refresh_from_db()
    assert (run.device, run.latest_loss, run.progress_current) == ("cuda", 0.25, 1)

    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert jobs.reap_stale_jobs(timedelta(minutes=5)) == 1
    jobs.retry_job(TrainingRun.objects.get(pk=run.pk))
    second_claim = jobs.claim_job(TrainingRun, run.pk)
    runs._RunProgress(second_claim, tmp_path)({"event": "started", "device": "cpu", "total": 600})

    with pytest.raises(jobs.JobLost):
        handler({"event": "started", "device": "cuda", "total": 600})  # a trainer restarted late
    with pytest.raises(jobs.JobLost):
        handler({"event": "step", "step": 600, "total": 600, "loss": 9.0})
    run.refresh_from_db()
    assert (run.attempts, run.device, run.latest_loss, run.progress_current) == (2, "cpu", None, 0)
