"""`/api/training/runs/`: starting (validation, limits), visibility, cancel, retry, logs."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from generation.models import DiffusionModel, ModelFamily, ModelSource
from imagineer.core.models import JobStatus
from tests.factories import AlbumFactory, UserFactory
from training.api.serializers.runs import PUBLIC_FIELDS
from training.models import TrainingRun

URL = "/api/training/runs/"


@pytest.fixture
def model(db):
    return DiffusionModel.objects.create(
        name="sd-test",
        source_type=ModelSource.DIFFUSERS_DIR,
        source="models/sd-test",
        family=ModelFamily.SD1,
        is_default=True,
    )


@pytest.fixture
def ready_album(captioned_album, training_config):
    training_config(min_captioned_images=2)
    return captioned_album(2, uncaptioned=1)


def start(api, album, **fields):
    return api.post(URL, {"name": "Run", "albums": [album.pk], **fields}, format="json")


def assert_refused(response, status: int, code: str, *fields: str):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    for field in fields:
        assert field in error["details"]["fields"], error
    assert not TrainingRun.objects.exists()
    return error


def test_an_admin_starts_a_run_with_defaults_from_the_config(admin_api, ready_album, model, training_config):
    training_config(min_captioned_images=2, steps=42, rank=8)
    response = start(admin_api, ready_album, learning_rate=0.001, trigger_words="kite")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["model"] == "sd-test" and body["albums"] == [ready_album.pk]
    params = body["parameters"]
    assert (params["steps"], params["rank"], params["learning_rate"]) == (42, 8, 0.001)
    assert isinstance(params["seed"], int)  # a random seed, recorded
    assert (body["captioned_images"], body["uncaptioned_images"]) == (2, 1)


def test_too_few_captions_is_a_400_saying_how_many(admin_api, captioned_album, training_config, model):
    training_config(min_captioned_images=5)
    album = captioned_album(3, uncaptioned=2)
    error = assert_refused(start(admin_api, album), 400, "too_few_captions")
    assert "Found 3 captioned image(s)" in error["message"] and "2 without a caption" in error["message"]
    assert "at least 5" in error["message"]
    assert error["details"]["minimum"] == 5


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"steps": 0}, "steps"),
        ({"rank": 1000}, "rank"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"resolution": 100}, "resolution"),  # not a multiple of 8
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"seed": -1}, "seed"),
        ({"epochs": 3}, "epochs"),  # unknown
        ({"albums": []}, "albums"),
        ({"albums": [999999]}, "albums"),
        ({"model": "nope"}, "model"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(admin_api, ready_album, model, fields, bad):
    assert_refused(start(admin_api, ready_album, **fields), 400, "validation_error", bad)


def test_sdxl_and_single_file_models_are_refused(admin_api, ready_album, model):
    DiffusionModel.objects.create(name="xl", source_type=ModelSource.HUB, source="org/xl", family=ModelFamily.SDXL)
    DiffusionModel.objects.create(name="one", source_type=ModelSource.SINGLE_FILE, source="m.safetensors")
    assert (
        "supports SD 1.x and 2.x"
        in assert_refused(start(admin_api, ready_album, model="xl"), 400, "model_not_trainable")["message"]
    )
    assert (
        "single-file"
        in assert_refused(start(admin_api, ready_album, model="one"), 400, "model_not_trainable")["message"]
    )


def test_a_set_template_is_not_a_dataset(admin_api, model):
    template = AlbumFactory(is_set_template=True)
    assert_refused(start(admin_api, template), 400, "validation_error", "albums")


def test_only_admins_start_runs(api_client, ready_album, model):
    assert start(api_client, ready_album).status_code == 401
    user_api = APIClient()
    user_api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory()).key}")
    assert start(user_api, ready_album).status_code == 403
    assert not TrainingRun.objects.exists()


def test_more_active_runs_than_allowed_is_a_429(admin_api, ready_album, model, training_config):
    training_config(min_captioned_images=2, max_active_runs=1)
    assert start(admin_api, ready_album).status_code == 202
    response = start(admin_api, ready_album)
    assert response.status_code == 429 and response.json()["error"]["code"] == "training_busy"
    assert "limit is 1" in response.json()["error"]["message"] and response["Retry-After"]
    assert TrainingRun.objects.count() == 1


def test_the_start_rate_per_admin_is_a_429(admin_api, ready_album, model, training_config, settings):
    settings.IMAGINEER_TRAINING_START_RATE = "2/h"
    training_config(min_captioned_images=2, max_active_runs=5)
    assert [start(admin_api, ready_album).status_code for _ in range(3)] == [202, 202, 429]
    assert TrainingRun.objects.count() == 2


def test_the_public_sees_public_fields_and_admins_everything(api_client, admin_api, ready_album, model):
    run_id = start(admin_api, ready_album, trigger_words="secret trigger").json()["id"]
    TrainingRun.objects.filter(pk=run_id).update(status=JobStatus.FAILED, error_message="boom")
    public = api_client.get(f"{URL}{run_id}/").json()
    assert set(public) == set(PUBLIC_FIELDS)
    assert public["model_family"] == "sd1" and public["lora_name"] is None
    listed = api_client.get(URL).json()["results"][0]
    assert set(listed) == set(PUBLIC_FIELDS)
    admin_view = admin_api.get(f"{URL}{run_id}/").json()
    for private in ("albums", "created_by", "parameters", "error_message", "trigger_words", "log_available"):
        assert private in admin_view and private not in public
    assert admin_view["error_message"] == "boom"
    assert api_client.get(f"{URL}{run_id}/logs/").status_code == 401


def test_cancel_a_queued_run_and_retry_it(admin_api, ready_album, model):
    run_id = start(admin_api, ready_album).json()["id"]
    cancelled = admin_api.post(f"{URL}{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = admin_api.post(f"{URL}{run_id}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_cancellable"
    retried = admin_api.post(f"{URL}{run_id}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"


def test_retry_counts_against_the_active_limit(admin_api, ready_album, model, training_config):
    training_config(min_captioned_images=2, max_active_runs=1)
    first = start(admin_api, ready_album).json()["id"]
    admin_api.post(f"{URL}{first}/cancel/")
    assert start(admin_api, ready_album).status_code == 202
    response = admin_api.post(f"{URL}{first}/retry/")
    assert response.status_code == 429 and TrainingRun.objects.get(pk=first).status == JobStatus.CANCELLED


def test_the_log_endpoint_reads_by_offset(admin_api, ready_album, model, media_root):
    run_id = start(admin_api, ready_album).json()["id"]
    empty = admin_api.get(f"{URL}{run_id}/logs/").json()
    assert (empty["lines"], empty["next_offset"], empty["complete"]) == ([], 0, False)
    log = media_root / "training" / "logs" / f"run-{run_id}.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"one\ntwo\npartial")
    TrainingRun.objects.filter(pk=run_id).update(log_file=f"training/logs/run-{run_id}.log")
    first = admin_api.get(f"{URL}{run_id}/logs/?offset=0").json()
    assert first["lines"] == ["one", "two"] and first["next_offset"] == 8  # the partial line waits
    with log.open("ab") as handle:
        handle.write(b" line\nthree\n")
    TrainingRun.objects.filter(pk=run_id).update(status=JobStatus.FAILED)
    second = admin_api.get(f"{URL}{run_id}/logs/?offset={first['next_offset']}").json()
    assert second["lines"] == ["partial line", "three"] and second["complete"] is True
    for bad in ("-1", "abc", "999999"):
        response = admin_api.get(f"{URL}{run_id}/logs/?offset={bad}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_offset"
