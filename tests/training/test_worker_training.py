"""Training through a real Celery worker (queues training + generation) with the tiny model."""

import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from PIL import Image as PILImage

from albums.models import Image
from tests.processes import celery_worker
from tests.training.helpers import QUICK

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(api, url, *, until=("succeeded", "failed", "cancelled"), timeout=180, check=lambda body: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(url).json()
        if body["status"] in until and check(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} still {body['status']} after {timeout}s")


def generate(api, **extra) -> bytes:
    """The pixels of one generated image (the PNG's metadata differs per job)."""
    job = api.post("/api/generation/jobs/", {"prompt": "a kite", "steps": 3, "seed": 5, **extra}, format="json").json()
    done = wait_for(api, f"/api/generation/jobs/{job['id']}/")
    assert done["status"] == "succeeded", done["error_message"]
    with Image.objects.get(pk=done["image_ids"][0]).file.open("rb") as handle:
        return PILImage.open(handle).convert("RGB").tobytes()


def test_a_worker_trains_a_lora_generation_can_use_and_cancel_stops_a_run(
    tiny_model, captioned_album, training_config, admin_api, media_root
):
    training_config(min_captioned_images=4)
    album = captioned_album(4)
    with celery_worker(queues="training,generation", media_root=media_root) as worker:
        run = admin_api.post(
            "/api/training/runs/",
            {"name": "Kites", "albums": [album.pk], "trigger_words": "kitez", **QUICK},
            format="json",
        ).json()
        done = wait_for(admin_api, f"/api/training/runs/{run['id']}/")
        assert done["status"] == "succeeded", (done["error_message"], worker.text[-3000:])
        assert done["lora_name"] == "Kites" and done["progress"] == 1.0 and done["final_loss"] is not None
        log = admin_api.get(f"/api/training/runs/{run['id']}/logs/").json()
        assert any("step 3/3" in line for line in log["lines"]) and log["complete"]

        plain = generate(admin_api)
        with_lora = generate(admin_api, loras=[{"lora": done["lora_slug"], "weight": 1.0}])
        assert with_lora != plain, "the trained LoRA must change the output"
        assert generate(admin_api) == plain  # the adapter is removed after its job

        long_run = admin_api.post(
            "/api/training/runs/", {"name": "Long", "albums": [album.pk], **QUICK, "steps": 5000}, format="json"
        ).json()
        url = f"/api/training/runs/{long_run['id']}/"
        wait_for(admin_api, url, until=("running",), check=lambda body: body["progress_current"] >= 1, timeout=120)
        from training.models import TrainingRun

        pid = TrainingRun.objects.get(pk=long_run["id"]).trainer_pid
        assert pid and psutil.pid_exists(pid)
        assert admin_api.post(f"{url}cancel/").status_code == 200
        cancelled = wait_for(admin_api, url, timeout=60)
        assert cancelled["status"] == "cancelled"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        scratch = Path(settings.IMAGINEER_TRAINING_DIR) / "scratch"
        assert not list(scratch.glob(f"run-{long_run['id']}-*"))
