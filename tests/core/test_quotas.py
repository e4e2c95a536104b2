"""Per-user quotas (images per day, jobs at once, GPU seconds per day) and GET /api/auth/me."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from albums.models import Album, Image
from generation.models import GenerationJob, SetRun
from imagineer.core import quotas
from imagineer.core.models import JobStatus, UserQuota
from tests.assertions import assert_envelope
from tests.factories import UserFactory, image_bytes, make_image

pytestmark = pytest.mark.django_db

JOB = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 7}


def write_quotas(config_file, **values) -> None:
    config_file.write_text(yaml.safe_dump({"quotas": values}), encoding="utf-8")


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def seconds_to_midnight() -> float:
    return (quotas.day_bounds()[1] - timezone.now()).total_seconds()


# --- /api/auth/me -------------------------------------------------------------------------------


def test_me_without_sign_in_is_401_in_the_envelope(api_client):
    error = assert_envelope(api_client.get("/api/auth/me"), 401, "not_authenticated")
    assert "credentials" in error["message"].lower()


def test_me_with_a_token_names_the_user_quotas_and_rate_limits(tiny_model, plain_user, user_client_api):
    plain_user.first_name, plain_user.last_name = "Ada", "Lovelace"
    plain_user.save()
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 2}).status_code == 202
    body = user_client_api.get("/api/auth/me/").json()
    assert body["id"] == plain_user.pk and body["email"] == plain_user.email and body["name"] == "Ada Lovelace"
    assert body["is_admin"] is False
    q = body["quotas"]
    assert q["exempt"] is False
    assert q["images_per_day"] == {"limit": 200, "used": 2, "remaining": 198}  # the queued job's 2 images
    assert q["concurrent_jobs"] == {"limit": 4, "used": 1, "remaining": 3}
    assert q["gpu_seconds_per_day"] == {"limit": 3600, "used": 0, "remaining": 3600}
    assert 0 < (timezone.datetime.fromisoformat(q["day_resets_at"]) - timezone.now()).total_seconds() <= 86400
    limits = {entry["group"]: entry for entry in body["rate_limits"]}
    assert limits["generation.jobs"]["rate"] == "10/m"
    assert (limits["generation.jobs"]["used"], limits["generation.jobs"]["remaining"]) == (1, 9)
    assert limits["images.upload"]["used"] == 0
    # Reading the state counts nothing.
    again = user_client_api.get("/api/auth/me/").json()["rate_limits"]
    assert [(e["group"], e["used"]) for e in again] == [(e["group"], e["used"]) for e in body["rate_limits"]]


def test_me_with_a_session_and_admins_are_exempt(admin_browser, admin_user):
    body = admin_browser.get("/api/auth/me").json()
    assert body["id"] == admin_user.pk and body["is_admin"] is True and body["quotas"]["exempt"] is True


# --- Images per day -----------------------------------------------------------------------------


def test_over_the_image_quota_is_429_naming_the_quota_use_limit_and_reset(
    tiny_model, plain_user, user_client_api, runtime_config_file
):
    write_quotas(runtime_config_file, images_per_day=3)
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 2}).status_code == 202
    response = user_client_api.post("/api/generation/jobs/", {**JOB, "count": 2})
    error = assert_envelope(response, 429, "quota_exceeded")
    details = error["details"]
    assert (details["quota"], details["used"], details["limit"], details["requested"]) == ("images_per_day", 2, 3, 2)
    assert "1 left today" in error["message"]
    retry_after = int(response["Retry-After"])
    assert abs(retry_after - seconds_to_midnight()) < 5 and details["retry_after"] == retry_after
    assert timezone.datetime.fromisoformat(details["resets_at"]) == quotas.day_bounds()[1]
    assert GenerationJob.objects.filter(created_by=plain_user).count() == 1  # nothing written for the refusal
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 1}).status_code == 202


def test_images_made_today_count_and_yesterdays_do_not(tiny_model, plain_user, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=2)
    made = make_image(is_public=False)
    Image.objects.filter(pk=made.pk).update(created_by=plain_user)
    old = make_image(is_public=False)
    Image.objects.filter(pk=old.pk).update(
        created_by=plain_user, created_at=timezone.now() - timedelta(days=1, hours=1)
    )
    assert quotas.measure_use(plain_user).images_per_day == 1
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 1}).status_code == 202
    assert_envelope(user_client_api.post("/api/generation/jobs/", {**JOB, "count": 1}), 429, "quota_exceeded")


def test_a_per_user_quota_overrides_the_default(tiny_model, plain_user, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=1)
    UserQuota.objects.update_or_create(user=plain_user, defaults={"images_per_day": 3})
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 3}).status_code == 202
    error = assert_envelope(user_client_api.post("/api/generation/jobs/", {**JOB, "count": 1}), 429)
    assert error["details"]["limit"] == 3


def test_a_null_limit_means_no_limit(tiny_model, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=None, concurrent_jobs=None)
    for _ in range(6):
        assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 4}).status_code == 202
    assert user_client_api.get("/api/auth/me").json()["quotas"]["images_per_day"]["remaining"] is None


def test_reruns_and_retries_count(tiny_model, plain_user, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=3)
    first = user_client_api.post("/api/generation/jobs/", {**JOB, "count": 2}).json()
    error = assert_envelope(user_client_api.post(f"/api/generation/jobs/{first['id']}/rerun/"), 429, "quota_exceeded")
    assert error["details"]["requested"] == 2
    # A failed job made none of its images: its retry asks for them again, and over the quota it stays failed.
    job = GenerationJob.objects.get(pk=first["id"])
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # a test's setup: no worker ran it
    assert user_client_api.post("/api/generation/jobs/", {**JOB, "count": 2}).status_code == 202
    assert_envelope(user_client_api.post(f"/api/generation/jobs/{job.pk}/retry/"), 429, "quota_exceeded")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


# --- Jobs at once -------------------------------------------------------------------------------


def test_jobs_at_once_refused_until_one_ends(tiny_model, plain_user, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, concurrent_jobs=2)
    ids = [user_client_api.post("/api/generation/jobs/", JOB).json()["id"] for _ in range(2)]
    response = user_client_api.post("/api/generation/jobs/", JOB)
    error = assert_envelope(response, 429, "quota_exceeded")
    assert (error["details"]["quota"], error["details"]["used"], error["details"]["limit"]) == ("concurrent_jobs", 2, 2)
    assert error["details"]["resets_at"] is None and response["Retry-After"] == str(quotas.CONCURRENT_RETRY_SECONDS)
    assert user_client_api.post(f"/api/generation/jobs/{ids[0]}/cancel/").status_code == 200
    assert user_client_api.post("/api/generation/jobs/", JOB).status_code == 202


# --- GPU seconds per day ------------------------------------------------------------------------


def test_gpu_seconds_of_jobs_finished_today_count(tiny_model, plain_user, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, gpu_seconds_per_day=100)
    now = timezone.now()

    def finished(seconds: float, when):
        GenerationJob.objects.create(
            prompt="p", model=tiny_model, scheduler="ddim", steps=1, guidance_scale=1, width=64, height=64, seed=1,
            created_by=plain_user, status=JobStatus.SUCCEEDED, finished_at=when, inference_seconds=seconds,
        )  # fmt: skip

    finished(500, now - timedelta(days=1, hours=1))  # yesterday's: the day has reset since
    finished(60, now)
    assert user_client_api.post("/api/generation/jobs/", JOB).status_code == 202
    finished(40, now)
    response = user_client_api.post("/api/generation/jobs/", JOB)
    error = assert_envelope(response, 429, "quota_exceeded")
    assert (error["details"]["quota"], error["details"]["used"], error["details"]["limit"]) == (
        "gpu_seconds_per_day",
        100,
        100,
    )
    assert abs(int(response["Retry-After"]) - seconds_to_midnight()) < 5


# --- Admins, set runs, uploads, training --------------------------------------------------------


def test_admins_are_exempt_unless_their_quota_row_says_otherwise(tiny_model, admin_user, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=1)
    client = token_client(admin_user)
    assert client.post("/api/generation/jobs/", {**JOB, "count": 3}).status_code == 202
    UserQuota.objects.update_or_create(user=admin_user, defaults={"exempt": False})
    assert_envelope(client.post("/api/generation/jobs/", {**JOB, "count": 1}), 429, "quota_exceeded")


def test_set_runs_count_every_row(tiny_model, admin_user, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=3)
    UserQuota.objects.update_or_create(user=admin_user, defaults={"exempt": False})
    items = [{"name": f"card {i}"} for i in range(4)]
    template = Album.objects.create(
        name="Deck", slug="deck", is_set_template=True, template_items=items, prompt_template="{name}"
    )
    client = token_client(admin_user)
    error = assert_envelope(client.post(f"/api/albums/{template.pk}/generate/", {"theme": "sea"}), 429)
    assert (error["details"]["quota"], error["details"]["requested"]) == ("images_per_day", 4)
    assert not SetRun.objects.exists()
    template.template_items = items[:3]
    template.save()
    assert client.post(f"/api/albums/{template.pk}/generate/", {"theme": "sea"}).status_code == 202
    assert quotas.measure_use(admin_user).images_per_day == 3


def test_uploads_count_and_a_refused_upload_leaves_nothing(admin_user, media_root, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=1)
    UserQuota.objects.update_or_create(user=admin_user, defaults={"exempt": False})
    client = token_client(admin_user)

    def upload(color: int):
        file = SimpleUploadedFile("a.png", image_bytes(color=color), content_type="image/png")
        return client.post("/api/images/", {"file": file}, format="multipart")

    assert upload(10).status_code == 201
    files_before = sorted(p for p in media_root.rglob("*") if p.is_file())
    assert_envelope(upload(20), 429, "quota_exceeded")
    assert Image.objects.count() == 1
    assert sorted(p for p in media_root.rglob("*") if p.is_file()) == files_before


def test_training_starts_and_retries_use_the_gpu_quota(tiny_model, admin_user, captioned_album, runtime_config_file):
    from training.models import TrainingRun

    runtime_config_file.write_text(
        yaml.safe_dump({"quotas": {"gpu_seconds_per_day": 10}, "training": {"min_captioned_images": 1}}),
        encoding="utf-8",
    )
    UserQuota.objects.update_or_create(user=admin_user, defaults={"exempt": False})
    album = captioned_album(1)
    earlier = TrainingRun.objects.create(
        name="earlier", model=tiny_model, created_by=admin_user, status=JobStatus.FAILED,
        finished_at=timezone.now(), train_seconds=12.5,
    )  # fmt: skip
    assert quotas.measure_use(admin_user).gpu_seconds_per_day == 12.5
    client = token_client(admin_user)
    response = client.post("/api/training/runs/", {"name": "next", "albums": [album.pk], "model": tiny_model.name})
    error = assert_envelope(response, 429, "quota_exceeded")
    assert error["details"]["quota"] == "gpu_seconds_per_day"
    assert_envelope(client.post(f"/api/training/runs/{earlier.pk}/retry/"), 429, "quota_exceeded")
    assert list(TrainingRun.objects.values_list("name", "status")) == [("earlier", JobStatus.FAILED)]


def test_bad_quota_config_is_refused_with_the_key(runtime_config_file, admin_client_api):
    write_quotas(runtime_config_file, images_per_day=-1)
    error = assert_envelope(admin_client_api.post("/api/admin/config/reload"), 400, "config_invalid")
    assert "quotas.images_per_day" in str(error["details"])


def test_each_user_has_their_own_count(tiny_model, user_client_api, runtime_config_file):
    write_quotas(runtime_config_file, images_per_day=1)
    assert user_client_api.post("/api/generation/jobs/", JOB).status_code == 202
    other = token_client(UserFactory())
    assert other.post("/api/generation/jobs/", JOB).status_code == 202
