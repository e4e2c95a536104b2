"""`manage.py run_embedded` (what `make run` starts): web + worker + beat on embedded defaults.

Starts the real thing on a fresh data dir (SQLite, filesystem broker, local media), drives a
thumbnail job and a generation job (tiny model) through the API to a real worker, and checks that
Ctrl-C stops all three.
"""

import io
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests
from PIL import Image as PILImage

from tests.processes import ROOT, OutputWatcher, base_env, free_port, kill_tree, wait_serving

pytestmark = pytest.mark.slow


def test_run_embedded_serves_runs_jobs_and_stops_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    env = base_env(IMAGINEER_DATA_DIR=str(data_dir), IMAGINEER_WORKER_CONCURRENCY="1")
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
        assert (data_dir / "imagineer.sqlite3").exists() and (data_dir / "broker" / "queue").is_dir()
        assert wait_serving(f"{base}/readyz", proc, out).json()["checks"] == {
            "database": "ok",
            "broker": "ok",
            "cache": "ok",
            "media": "ok",
        }
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(c.cmdline()) for c in children]
        assert any("runserver" in c for c in commands)
        assert any(" worker" in c for c in commands) and any(" beat" in c for c in commands)

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
        job_url = f"{base}/api/jobs/thumbnails/{job.json()['id']}/"
        deadline = time.monotonic() + 90
        while (state := requests.get(job_url, headers=auth, timeout=10).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, out.text[-3000:]
            time.sleep(0.5)
        assert state["status"] == "succeeded", (state, out.text[-3000:])
        assert (
            requests.get(f"{base}/api/images/{image_id}/thumbnail", timeout=10).headers["Content-Type"] == "image/webp"
        )

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.text[-3000:]
        assert out.wait_for("Stopped web, worker and beat.", timeout=5)
        time.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], [c.cmdline() for c in alive]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)
    finally:
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        kill_tree(proc)
