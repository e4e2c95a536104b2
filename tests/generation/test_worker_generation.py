"""End to end through a real Celery worker on the `generation` queue with the tiny model."""

import io
import os
import time

import pytest
from PIL import Image as PILImage
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from albums.models import Image
from generation.models import GenerationJob
from generation.pipeline.metadata import parse_a1111_parameters
from tests.processes import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(client, job_id, *, until=("succeeded", "failed", "cancelled"), timeout=120, check=lambda body: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/generation/jobs/{job_id}/").json()
        if body["status"] in until and check(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s")


@pytest.fixture
def client(admin_user):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    return api


def test_jobs_run_on_a_real_worker(tiny_model, tiny_lora, client, media_root):
    lora = tiny_lora("to-break", seed=9)
    with celery_worker(queues="generation,default", media_root=media_root) as worker:
        first = client.post(
            "/api/generation/jobs/", {"prompt": "a red kite", "steps": 3, "seed": 77, "guidance_scale": 5}
        ).json()
        done = wait_for(client, first["id"])
        assert done["status"] == "succeeded", (done["error_message"], worker.text[-3000:])
        image = Image.objects.get(pk=done["image_ids"][0])
        assert image.thumbnail.storage.exists(image.thumbnail.name)
        with image.file.open("rb") as handle:
            parsed = parse_a1111_parameters(PILImage.open(io.BytesIO(handle.read())).text["parameters"])
        assert (parsed["prompt"], parsed["steps"], parsed["seed"], parsed["guidance_scale"]) == (
            "a red kite",
            3,
            77,
            5.0,
        )
        assert (parsed["model"], parsed["width"], parsed["height"]) == ("tiny-sd", 64, 64)
        assert done["timings"]["model_load_seconds"] > 0

        warm = wait_for(client, client.post("/api/generation/jobs/", {"prompt": "again", "steps": 3}).json()["id"])
        assert warm["status"] == "succeeded" and warm["timings"]["model_load_seconds"] == 0  # no reload

        with lora.file.open("wb") as handle:
            handle.write(b"corrupted")
        broken = client.post(
            "/api/generation/jobs/", {"prompt": "x", "steps": 2, "loras": [{"lora": lora.slug, "weight": 0.5}]}
        ).json()
        failed = wait_for(client, broken["id"])
        assert failed["status"] == "failed" and "to-break" in failed["error_message"]
        after = wait_for(
            client, client.post("/api/generation/jobs/", {"prompt": "still fine", "steps": 2}).json()["id"]
        )
        assert after["status"] == "succeeded"

        long_job = client.post("/api/generation/jobs/", {"prompt": "slow", "steps": 150}).json()
        wait_for(client, long_job["id"], until=("running",), check=lambda body: body["progress_current"] > 0)
        client.post(f"/api/generation/jobs/{long_job['id']}/cancel/")
        cancelled = wait_for(client, long_job["id"])
        assert cancelled["status"] == "cancelled" and cancelled["progress_current"] < 150
        assert GenerationJob.objects.get(pk=long_job["id"]).images.count() == 0
    assert str(media_root) not in worker.text


def test_set_run_goes_on_after_a_failed_batch(tiny_model, tiny_lora, client, media_root, settings):
    """A LoRA file corrupted while the run is going makes the later batches fail, not the run."""
    from albums.models import Album
    from generation.models import SetRun

    lora = tiny_lora("mid-run", seed=12)
    rows = [{"n": str(i)} for i in range(12)]
    template = Album.objects.create(
        name="Numbers",
        slug="numbers",
        is_set_template=True,
        template_items=rows,
        prompt_template="number {n}",
        loras=[{"lora": lora.slug, "weight": 0.5}],
    )
    with celery_worker(queues="generation", media_root=media_root) as worker:
        body = client.post(
            f"/api/albums/{template.pk}/generate/",
            {"theme": "t", "steps": 16, "width": 64, "height": 64, "batch_size": 4},
        ).json()
        deadline = time.monotonic() + 120
        while SetRun.objects.get(pk=body["id"]).completed_items < 4:
            assert time.monotonic() < deadline, worker.text[-3000:]
            time.sleep(0.05)
        # Replace the file (a new inode, as a re-upload would): the next batch to load it finds
        # garbage. Overwriting in place would pull pages from under the worker's mmap (SIGBUS).
        replacement = media_root / "replacement.tmp"
        replacement.write_bytes(b"corrupted mid-run")
        os.replace(replacement, lora.file.path)
        deadline = time.monotonic() + 120
        while not (run := SetRun.objects.get(pk=body["id"])).is_final:
            assert time.monotonic() < deadline, worker.text[-3000:]
            time.sleep(0.2)
    assert run.status == "succeeded", run.error_message
    assert run.completed_items >= 4 and run.failed_items >= 4 and run.completed_items + run.failed_items == 12
    assert {f["row"] for f in run.failures} == set(range(run.completed_items + 1, 13))
    assert "mid-run" in run.failures[0]["error"]
    assert run.output_album.album_images.count() == run.completed_items
