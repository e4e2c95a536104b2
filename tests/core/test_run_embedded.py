"""`manage.py run_embedded` (what `make run` starts): web + GPU worker + light worker + beat.

The layout of the children is checked on their command lines; then the real thing starts on a
fresh data dir (SQLite, filesystem broker, local media), a thumbnail job and a generation job (tiny
model) go through the API to the real workers, each worker's registry row is read from the run's
database, and Ctrl-C stops them all.
"""

import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import psutil
import pytest
import requests
from PIL import Image as PILImage

from imagineer.celery import QUEUES
from imagineer.core.management.commands import run_embedded
from imagineer.core.management.commands.run_embedded import embedded_processes
from tests.processes import ROOT, OutputWatcher, base_env, free_port, kill_tree, wait_serving

GPU_QUEUES = ["generation", "training"]
LIGHT_QUEUES = [queue for queue in QUEUES if queue not in GPU_QUEUES]


def _option(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} appears {argv.count(name)} times in {argv}"
    return argv[argv.index(name) + 1]


def _workers(children: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: argv for name, argv in children.items() if "worker" in argv}


def test_gpu_queues_get_a_worker_of_their_own_with_one_process(settings):
    settings.CELERY_WORKER_CONCURRENCY = 3  # the setting sizes the light worker only
    workers = _workers(embedded_processes("127.0.0.1", 8000))
    [gpu] = [argv for argv in workers.values() if set(_option(argv, "-Q").split(",")) & set(GPU_QUEUES)]
    assert _option(gpu, "-Q").split(",") == GPU_QUEUES
    # One GPU runs one pipeline: a second process would load a second copy of the model.
    assert (_option(gpu, "--concurrency"), _option(gpu, "--pool")) == ("1", "prefork")
    assert _option(gpu, "--hostname") == "gpu@%h"


def test_light_queues_share_a_worker_sized_by_the_concurrency_setting(settings):
    settings.CELERY_WORKER_CONCURRENCY = 3
    workers = _workers(embedded_processes("127.0.0.1", 8000))
    assert len(workers) == 2, workers
    [light] = [argv for argv in workers.values() if not set(_option(argv, "-Q").split(",")) & set(GPU_QUEUES)]
    assert _option(light, "-Q").split(",") == LIGHT_QUEUES == ["default", "scraping", "labeling", "maintenance"]
    assert (_option(light, "--concurrency"), _option(light, "--pool")) == ("3", "prefork")
    assert _option(light, "--hostname") == "light@%h"


def test_a_new_queue_is_consumed_by_the_light_worker(monkeypatch):
    monkeypatch.setattr(run_embedded, "QUEUES", (*QUEUES, "upscaling"))
    workers = _workers(embedded_processes("127.0.0.1", 8000)).values()
    [consumer] = [argv for argv in workers if "upscaling" in _option(argv, "-Q").split(",")]
    assert _option(consumer, "--hostname") == "light@%h"


def test_web_and_one_beat_run_beside_the_workers():
    children = embedded_processes("0.0.0.0", 8123)
    assert children["web"][-3:] == ["runserver", "0.0.0.0:8123", "--noreload"]
    assert [name for name, argv in children.items() if "beat" in argv] == ["beat"]


def _worker_rows(database) -> list[dict]:
    """The run's CeleryWorker rows (imagineer.core.workers), read with sqlite3 as an operator would."""
    with sqlite3.connect(database, timeout=30) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT name, queues, concurrency, last_seen_at, stopped_at FROM core_celery_worker")
        return [{**row, "queues": json.loads(row["queues"])} for row in map(dict, rows)]


def _job_worker(database, table: str, job_id: int) -> str:
    with sqlite3.connect(database, timeout=30) as db:
        return db.execute(f"SELECT worker FROM {table} WHERE id = ?", (job_id,)).fetchone()[0]


def _wait_final(url: str, auth: dict, timeout: float, out: OutputWatcher) -> dict:
    deadline = time.monotonic() + timeout
    while (state := requests.get(url, headers=auth, timeout=10).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, (state, out.text[-3000:])
        time.sleep(0.5)
    return state


@pytest.mark.slow
def test_run_embedded_serves_runs_jobs_and_stops_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "data"
    database = data_dir / "imagineer.sqlite3"
    port = free_port()
    env = base_env(IMAGINEER_DATA_DIR=str(data_dir), IMAGINEER_WORKER_CONCURRENCY="2")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_embedded", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = OutputWatcher(proc)
    base = f"http://127.0.0.1:{port}"
    children = []
    try:
        wait_serving(f"{base}/healthz", proc, out)
        assert out.wait_for(f"{base}/admin/", timeout=30), out.text[-2000:]
        assert "initial-admin-password.txt" in out.text
        assert database.exists() and (data_dir / "broker" / "queue").is_dir()
        assert wait_serving(f"{base}/readyz", proc, out).json()["checks"] == {
            "database": "ok",
            "broker": "ok",
            "cache": "ok",
            "media": "ok",
        }
        children = psutil.Process(proc.pid).children(recursive=True)
        # Direct children only: a prefork pool process carries its worker's command line too.
        commands = [c.cmdline() for c in psutil.Process(proc.pid).children()]
        assert sum("runserver" in c for c in commands) == 1 and sum("beat" in c for c in commands) == 1, commands
        workers = [c for c in commands if "worker" in c]
        assert sorted((_option(c, "-Q"), _option(c, "--concurrency")) for c in workers) == [
            (",".join(LIGHT_QUEUES), "2"),
            ("generation,training", "1"),
        ], commands

        token = subprocess.run(
            [sys.executable, "manage.py", "drf_create_token", "admin"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[2]
        auth = {"Authorization": f"Token {token}"}
        png = io.BytesIO()
        PILImage.new("RGB", (300, 200), (1, 2, 3)).save(png, "PNG")
        uploaded = requests.post(
            f"{base}/api/images/", headers=auth, files={"file": ("a.png", png.getvalue())}, timeout=30
        )
        assert uploaded.status_code == 201, uploaded.text
        image_id = uploaded.json()["id"]
        job = requests.post(
            f"{base}/api/images/rebuild-thumbnails/", headers=auth, json={"image_ids": [image_id]}, timeout=30
        )
        assert job.status_code == 202, job.text
        thumbnail_job_id = job.json()["id"]
        state = _wait_final(f"{base}/api/jobs/thumbnails/{thumbnail_job_id}/", auth, 90, out)
        assert state["status"] == "succeeded", (state, out.text[-3000:])
        # The upload is hidden from anonymous callers until its NSFW check (light worker, `labeling`) passed.
        deadline = time.monotonic() + 120
        while (image := requests.get(f"{base}/api/images/{image_id}/", headers=auth, timeout=10).json())[
            "nsfw_check"
        ] == "pending":
            assert time.monotonic() < deadline, (image, out.text[-3000:])
            time.sleep(0.5)
        assert image["nsfw_check"] == "passed", image
        assert (
            requests.get(f"{base}/api/images/{image_id}/thumbnail", timeout=10).headers["Content-Type"] == "image/webp"
        )

        generation = requests.post(
            f"{base}/api/generation/jobs/",
            headers=auth,
            json={
                "prompt": "a lighthouse at dusk",
                "model": "tiny-sd",
                "steps": 2,
                "count": 1,
                "width": 64,
                "height": 64,
            },
            timeout=30,
        )
        assert generation.status_code == 202, generation.text
        generation_job_id = generation.json()["id"]
        state = _wait_final(f"{base}/api/generation/jobs/{generation_job_id}/", auth, 180, out)
        assert state["status"] == "succeeded", (state, out.text[-3000:])
        # Each job ran on the worker of its queue.
        assert _job_worker(database, "generation_generationjob", generation_job_id).startswith("gpu@")
        assert _job_worker(database, "albums_thumbnailjob", thumbnail_job_id).startswith("light@")

        # The worker registry: one live row per worker, with the queues it consumes.
        deadline = time.monotonic() + 60
        while len(rows := [r for r in _worker_rows(database) if r["stopped_at"] is None]) < 2:
            assert time.monotonic() < deadline, (rows, out.text[-3000:])
            time.sleep(0.5)
        assert sorted((r["name"].split("@")[0], r["queues"], r["concurrency"]) for r in rows) == [
            ("gpu", GPU_QUEUES, 1),
            ("light", sorted(LIGHT_QUEUES), 2),
        ], rows
        now = datetime.now(UTC)
        for row in rows:
            seen = datetime.fromisoformat(row["last_seen_at"]).replace(tzinfo=UTC)
            assert (now - seen).total_seconds() < 45, row  # IMAGINEER_WORKER_STALE_AFTER_SECONDS

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.text[-3000:]
        assert out.wait_for("Stopped web, workers and beat.", timeout=5)
        time.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], [c.cmdline() for c in alive]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)
        # A warm stop: each worker's last report says it stopped, so nothing is thought lost with it.
        assert all(r["stopped_at"] is not None for r in _worker_rows(database)), _worker_rows(database)
    finally:
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        kill_tree(proc)
