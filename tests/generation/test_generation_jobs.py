"""Generation jobs through the API and the job lifecycle (run in-process; the worker test runs them for real)."""

import io
import json

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from albums.models import Album, Image, ImageSource
from generation import services
from generation.models import GenerationJob, SetRun
from generation.pipeline.metadata import parse_a1111_parameters
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, UserFactory

pytestmark = pytest.mark.django_db

VALID = {"prompt": "a lighthouse at dusk", "steps": 3, "width": 64, "height": 64, "seed": 1234, "guidance_scale": 6.5}


def run(job: GenerationJob) -> GenerationJob:
    jobs.run_job(GenerationJob, job.pk, services.run_generation_job)
    job.refresh_from_db()
    return job


def test_post_job_answers_202_and_runs_to_images_with_metadata(tiny_model, user_client_api, plain_user):
    response = user_client_api.post(
        "/api/generation/jobs/", {**VALID, "negative_prompt": "fog", "count": 2, "scheduler": "ddim"}
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["model"] == "tiny-sd" and body["seed"] == 1234
    job = run(GenerationJob.objects.get(pk=body["id"]))
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    images = list(job.images.order_by("seed"))
    assert [i.seed for i in images] == [1234, 1235]
    image = images[0]
    assert image.source == ImageSource.GENERATED and image.created_by == plain_user
    assert (image.prompt, image.negative_prompt, image.steps, image.guidance_scale, image.model) == (
        "a lighthouse at dusk",
        "fog",
        3,
        6.5,
        "tiny-sd",
    )
    assert image.thumbnail.storage.exists(image.thumbnail.name)
    with image.file.open("rb") as handle:
        png = PILImage.open(io.BytesIO(handle.read()))
    parsed = parse_a1111_parameters(png.text["parameters"])
    assert parsed["prompt"] == "a lighthouse at dusk" and parsed["negative_prompt"] == "fog"
    assert (parsed["steps"], parsed["guidance_scale"], parsed["seed"]) == (3, 6.5, 1234)
    assert (parsed["sampler"], parsed["model"], parsed["width"], parsed["height"]) == ("DDIM", "tiny-sd", 64, 64)
    full = json.loads(png.text["imagineer"])
    assert full["scheduler"] == "ddim" and full["seed"] == 1234
    assert "/" not in png.text["parameters"].replace("a lighthouse", "")  # no path in the file
    detail = user_client_api.get(f"/api/generation/jobs/{job.pk}/").json()
    assert detail["status"] == "succeeded" and sorted(detail["image_ids"]) == sorted(i.pk for i in images)
    assert detail["progress"] == 1.0 and detail["progress_current"] == detail["progress_total"] == 3
    timings = detail["timings"]
    assert timings["inference_seconds"] > 0 and timings["save_seconds"] > 0  # two images were stored
    phases = timings["model_load_seconds"] + timings["inference_seconds"] + timings["save_seconds"]
    assert phases <= timings["total_seconds"] + 0.001  # each phase timed inside the job (rounding aside)


def test_same_parameters_same_pixels_and_seed_recorded_when_random(tiny_model, admin_user):
    first = run(services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2, seed=5))
    second = run(services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2, seed=5))
    with first.images.get().file.open("rb") as a, second.images.get().file.open("rb") as b:
        assert (np.asarray(PILImage.open(a)) == np.asarray(PILImage.open(b))).all()  # same pixels
    randomly = services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2)
    assert 0 <= randomly.seed < 2**32


def test_seed_zero_and_guidance_zero_are_values(tiny_model, admin_client_api):
    body = admin_client_api.post("/api/generation/jobs/", {**VALID, "seed": 0, "guidance_scale": 0}).json()
    assert body["seed"] == 0 and body["guidance_scale"] == 0.0


def test_job_into_album(tiny_model, admin_client_api):
    album = AlbumFactory()
    body = admin_client_api.post("/api/generation/jobs/", {**VALID, "album": album.pk}).json()
    job = run(GenerationJob.objects.get(pk=body["id"]))
    assert list(album.album_images.values_list("image_id", flat=True)) == [job.images.get().pk]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt"),
        ({"steps": 0}, "steps"),
        ({"steps": 151}, "steps"),
        ({"guidance_scale": -0.5}, "guidance_scale"),
        ({"guidance_scale": 30.5}, "guidance_scale"),
        ({"width": 60}, "width"),
        ({"width": 2056}, "width"),
        ({"height": 100}, "height"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"count": 0}, "count"),
        ({"count": 9}, "count"),
        ({"scheduler": "warp-drive"}, "scheduler"),
        ({"model": "no-such-model"}, "model"),
        ({"loras": [{"lora": "no-such-lora", "weight": 0.5}]}, "loras"),
        ({"loras": [{"lora": "x", "weight": 1}] * 6}, "loras"),
        ({"steps": "many"}, "steps"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_out_of_range_parameters_are_400_naming_the_field(tiny_model, user_client_api, change, field):
    response = user_client_api.post("/api/generation/jobs/", {**VALID, **change})
    error = assert_envelope(response, 400, "validation_error")
    assert field in error["details"]["fields"], error
    assert GenerationJob.objects.count() == 0


def test_lora_weight_out_of_range_and_wrong_family(tiny_model, tiny_lora, user_client_api):
    lora = tiny_lora("style-a", seed=1)
    error = assert_envelope(
        user_client_api.post("/api/generation/jobs/", {**VALID, "loras": [{"lora": lora.slug, "weight": 2.5}]}), 400
    )
    assert "loras" in error["details"]["fields"]
    lora.family = "sdxl"
    lora.save()
    error = assert_envelope(
        user_client_api.post("/api/generation/jobs/", {**VALID, "loras": [{"lora": lora.slug}]}),
        400,
        "lora_incompatible",
    )
    assert "sdxl" in error["message"].lower() or "SDXL" in error["message"]
    assert GenerationJob.objects.count() == 0


def test_generation_rate_limit_answers_429_with_retry_after(tiny_model, user_client_api, settings):
    settings.IMAGINEER_GENERATION_RATE = "2/m"
    assert user_client_api.post("/api/generation/jobs/", VALID).status_code == 202
    assert user_client_api.post("/api/generation/jobs/", VALID).status_code == 202
    response = user_client_api.post("/api/generation/jobs/", VALID)
    assert_envelope(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert GenerationJob.objects.count() == 2


def test_anonymous_cannot_generate_and_users_see_only_their_jobs(
    tiny_model, api_client, user_client_api, other_user_client_api, admin_client_api
):
    assert_envelope(api_client.post("/api/generation/jobs/", VALID), 401)
    mine = user_client_api.post("/api/generation/jobs/", VALID).json()
    assert [j["id"] for j in user_client_api.get("/api/generation/jobs/").json()["results"]] == [mine["id"]]
    assert other_user_client_api.get("/api/generation/jobs/").json()["results"] == []
    assert_envelope(other_user_client_api.get(f"/api/generation/jobs/{mine['id']}/"), 404)
    assert_envelope(other_user_client_api.post(f"/api/generation/jobs/{mine['id']}/cancel/"), 404)
    assert admin_client_api.get(f"/api/generation/jobs/{mine['id']}/").status_code == 200


def test_users_cannot_generate_into_other_albums_or_templates(tiny_model, user_client_api, admin_client_api):
    album = AlbumFactory()
    assert_envelope(user_client_api.post("/api/generation/jobs/", {**VALID, "album": album.pk}), 400)
    template = AlbumFactory(is_set_template=True, template_items=[{"a": "b"}], prompt_template="{a}")
    error = assert_envelope(admin_client_api.post("/api/generation/jobs/", {**VALID, "album": template.pk}), 400)
    assert "template" in error["message"]


def test_cancel_queued_job(tiny_model, user_client_api):
    queued = user_client_api.post("/api/generation/jobs/", VALID).json()
    assert user_client_api.post(f"/api/generation/jobs/{queued['id']}/cancel/").json()["status"] == "cancelled"
    assert jobs.claim_job(GenerationJob, queued["id"]) is None


def test_corrupt_lora_fails_the_job_and_the_next_job_succeeds(tiny_model, tiny_lora, admin_user):
    lora = tiny_lora("will-break", seed=3)
    with lora.file.open("wb") as handle:
        handle.write(b"this is no longer a safetensors file")
    broken = run(
        services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2, loras=[(lora, 0.7)])
    )
    assert broken.status == JobStatus.FAILED
    assert "will-break" in broken.error_message and "could not be applied" in broken.error_message
    healthy = run(services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2))
    assert healthy.status == JobStatus.SUCCEEDED and healthy.images.count() == 1


def test_missing_model_fails_job_with_readable_message(tiny_model, admin_user):
    tiny_model.source = "models/gone"
    tiny_model.save()
    job = run(services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2))
    assert job.status == JobStatus.FAILED and "diffusers folder is missing" in job.error_message


def test_rerun_keeps_every_parameter(tiny_model, user_client_api):
    first = user_client_api.post("/api/generation/jobs/", {**VALID, "count": 2}).json()
    again = user_client_api.post(f"/api/generation/jobs/{first['id']}/rerun/").json()
    for key in (
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "guidance_scale",
        "width",
        "height",
        "count",
        "scheduler",
        "model",
    ):
        assert again[key] == first[key], key
    assert again["id"] != first["id"]


def test_retry_queues_the_same_failed_job_again_for_its_owner_only(
    tiny_model, user_client_api, other_user_client_api, django_capture_on_commit_callbacks
):
    body = user_client_api.post("/api/generation/jobs/", {**VALID, "count": 2}).json()
    job = GenerationJob.objects.get(pk=body["id"])
    refused = assert_envelope(user_client_api.post(f"/api/generation/jobs/{job.pk}/retry/"), 409, "job_not_retryable")
    assert refused["details"]["status"] == "queued"

    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error_message="The worker stopped")
    assert_envelope(other_user_client_api.post(f"/api/generation/jobs/{job.pk}/retry/"), 404)
    assert GenerationJob.objects.get(pk=job.pk).status == JobStatus.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client_api.post(f"/api/generation/jobs/{job.pk}/retry/")
    assert response.status_code == 202, response.content
    again = response.json()
    assert (again["id"], again["status"], again["error_message"]) == (job.pk, "queued", "")
    assert response["Location"] == again["url"]
    assert GenerationJob.objects.count() == 1
    job.refresh_from_db()
    assert job.sent_at is not None and job.celery_task_id


def test_set_run_retry_is_for_failed_runs_and_admins(admin_client_api, user_client_api, tiny_model):
    template = Album.objects.create(name="Deck", slug="deck", is_set_template=True)
    run = SetRun.objects.create(template=template, album_name="Out", theme="t", model=tiny_model)
    assert_envelope(admin_client_api.post(f"/api/generation/set-runs/{run.pk}/retry/"), 409, "job_not_retryable")
    SetRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED, completed_items=3)
    assert_envelope(user_client_api.post(f"/api/generation/set-runs/{run.pk}/retry/"), 403)
    response = admin_client_api.post(f"/api/generation/set-runs/{run.pk}/retry/")
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["completed_items"]) == ("queued", 0)


def test_generated_images_visible_to_their_maker_until_hidden(
    tiny_model, user_client_api, other_user_client_api, plain_user
):
    body = user_client_api.post("/api/generation/jobs/", VALID).json()
    image = run(GenerationJob.objects.get(pk=body["id"])).images.get()
    Image.objects.filter(pk=image.pk).update(is_public=False)
    assert user_client_api.get(f"/api/images/{image.pk}/").status_code == 200
    assert_envelope(other_user_client_api.get(f"/api/images/{image.pk}/"), 404)


def test_generating_into_someone_elses_album_looks_like_a_missing_album(tiny_model, user_client_api):
    theirs = AlbumFactory(is_public=False, created_by=UserFactory())
    other = assert_envelope(user_client_api.post("/api/generation/jobs/", {**VALID, "album": theirs.pk}), 400)
    missing = assert_envelope(user_client_api.post("/api/generation/jobs/", {**VALID, "album": 999999}), 400)
    assert other["details"]["fields"]["album"][0].replace(str(theirs.pk), "N") == missing["details"]["fields"]["album"][
        0
    ].replace("999999", "N")


def test_same_lora_twice_is_400(tiny_model, tiny_lora, user_client_api):
    lora = tiny_lora("twice", seed=1)
    response = user_client_api.post(
        "/api/generation/jobs/", {**VALID, "loras": [{"lora": lora.slug}, {"lora": str(lora.pk)}]}
    )
    assert "loras" in assert_envelope(response, 400, "validation_error")["details"]["fields"]


def test_missing_lora_file_fails_job_without_naming_storage(tiny_model, tiny_lora, admin_user, settings):
    lora = tiny_lora("vanished", seed=2)
    default_storage.delete(lora.file.name)
    job = services.start_generation_job(user=admin_user, model=tiny_model, prompt="x", steps=2, loras=[(lora, 0.5)])
    jobs.run_job(GenerationJob, job.pk, services.run_generation_job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "file is missing" in job.error_message
    assert "loras/" not in job.error_message and str(settings.MEDIA_ROOT) not in job.error_message


def test_identical_parameters_from_two_users_make_two_images(tiny_model, admin_user, plain_user):
    first = services.start_generation_job(user=admin_user, model=tiny_model, prompt="same", steps=2, seed=9)
    second = services.start_generation_job(user=plain_user, model=tiny_model, prompt="same", steps=2, seed=9)
    for job in (first, second):
        jobs.run_job(GenerationJob, job.pk, services.run_generation_job)
    a, b = first.images.get(), second.images.get()
    assert a.pk != b.pk and (a.created_by, b.created_by) == (admin_user, plain_user)


def test_a_reaped_workers_late_writes_touch_nothing(tiny_model):
    from datetime import timedelta

    from django.utils import timezone

    job = GenerationJob.objects.create(
        model=tiny_model, prompt="p", scheduler="euler", steps=2, guidance_scale=7, width=64, height=64, seed=1
    )
    first_claim = jobs.claim_job(GenerationJob, job.pk)
    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert jobs.reap_stale_jobs(timedelta(minutes=5)) == 1
    jobs.retry_job(GenerationJob.objects.get(pk=job.pk))
    second_claim = jobs.claim_job(GenerationJob, job.pk)
    assert second_claim.attempts == first_claim.attempts + 1
    with pytest.raises(jobs.JobLost):
        jobs.record_progress(first_claim, 1, 2)
    assert jobs.finish_job(first_claim, JobStatus.SUCCEEDED) is False
    assert GenerationJob.objects.get(pk=job.pk).status == JobStatus.RUNNING  # the second attempt's to finish


@pytest.mark.django_db(transaction=True)  # committed for real, so the send happens inside the request
def test_unreachable_broker_fails_the_job_and_answers_503(tiny_model, user_client_api, monkeypatch):
    from imagineer.celery import app

    original = app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment ahead of its own config (CI sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app.conf.broker_connection_max_retries = 0
    app._pool = app.amqp._producer_pool = None  # drop connections made to the real broker earlier
    try:
        response = user_client_api.post("/api/generation/jobs/", VALID)
    finally:
        app.conf.broker_url = original
        app.conf.broker_connection_max_retries = None
        app._pool = app.amqp._producer_pool = None
    error = assert_envelope(response, 503, "queue_unavailable")
    job = GenerationJob.objects.get(pk=error["details"]["job_id"])
    assert job.status == JobStatus.FAILED and "could not be reached" in job.error_message
    assert Album.objects.count() == 0
