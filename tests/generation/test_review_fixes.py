"""Privacy and lifecycle edges: filters, albums of others, LoRA errors, stale claims, retries."""

import pytest
from django.core.files.storage import default_storage

from albums.models import Album
from generation import services
from generation.models import GenerationJob, SetRun
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from tests.conftest import assert_envelope
from tests.factories import AlbumFactory, UserFactory, make_image

pytestmark = pytest.mark.django_db
VALID = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 3}


def test_image_album_filter_never_shows_a_private_albums_contents(api_client, admin_client_api):
    private = AlbumFactory(is_public=False)
    make_image(album=private)
    assert api_client.get(f"/api/images/?album={private.pk}").json()["count"] == 0
    assert admin_client_api.get(f"/api/images/?album={private.pk}").json()["count"] == 1


def test_owner_sees_own_private_image_but_never_nsfw(user_client_api, plain_user):
    private = make_image(is_public=False, user=plain_user)
    nsfw = make_image(is_nsfw=True, user=plain_user)
    assert user_client_api.get(f"/api/images/{private.pk}/").status_code == 200
    assert_envelope(user_client_api.get(f"/api/images/{nsfw.pk}/"), 404)


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


def test_describe_failure_hides_any_absolute_path():
    message = jobs.describe_failure(OSError("cannot open /tmp/imagineer-loras/abc.safetensors"))
    assert "/tmp" not in message and "<path>" in message


def test_identical_parameters_from_two_users_make_two_images(tiny_model, admin_user, plain_user):
    first = services.start_generation_job(user=admin_user, model=tiny_model, prompt="same", steps=2, seed=9)
    second = services.start_generation_job(user=plain_user, model=tiny_model, prompt="same", steps=2, seed=9)
    for job in (first, second):
        jobs.run_job(GenerationJob, job.pk, services.run_generation_job)
    a, b = first.images.get(), second.images.get()
    assert a.pk != b.pk and (a.created_by, b.created_by) == (admin_user, plain_user)


def test_thumbnail_of_an_image_whose_file_is_gone_is_404(admin_client_api):
    image = make_image()
    default_storage.delete(image.file.name)
    default_storage.delete(image.thumbnail.name)
    assert_envelope(admin_client_api.get(f"/api/images/{image.pk}/thumbnail"), 404, "file_missing")


def test_set_run_checks_the_templates_own_size(tiny_model, admin_client_api):
    template = AlbumFactory(
        is_set_template=True, template_items=[{"a": "1"}], prompt_template="{a}", width=100, height=5000
    )
    error = assert_envelope(admin_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x"}), 400)
    assert {"width", "height"} <= set(error["details"]["fields"])
    ok = admin_client_api.post(f"/api/albums/{template.pk}/generate/", {"theme": "x", "width": 64, "height": 64})
    assert ok.status_code == 202
    assert SetRun.objects.count() == 1


def test_retry_starts_counters_afresh(tiny_model, admin_user):
    template = AlbumFactory(is_set_template=True, template_items=[{"a": "1"}], prompt_template="{a}")
    run = SetRun.objects.create(
        template=template, album_name="x", theme="t", model=tiny_model, status=JobStatus.FAILED,
        completed_items=1, failed_items=1, failures=[{"row": 1}], total_items=2,
    )  # fmt: skip
    jobs.retry_job(run)
    run.refresh_from_db()
    assert (run.status, run.completed_items, run.failed_items, run.failures) == (JobStatus.QUEUED, 0, 0, [])


def test_a_reaped_workers_late_writes_touch_nothing(tiny_model):
    from datetime import timedelta

    from django.utils import timezone

    job = GenerationJob.objects.create(model=tiny_model, prompt="p", scheduler="euler", steps=2, guidance_scale=7,
                                       width=64, height=64, seed=1)  # fmt: skip
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
