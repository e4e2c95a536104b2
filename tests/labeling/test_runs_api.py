"""Starting, following, cancelling and retrying labeling runs through the API."""

import pytest
from django.core.files.storage import default_storage

from imagineer.core.models import JobStatus
from labeling import services
from labeling.models import LabelerResult, LabelingRun
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, make_image
from tests.labeling.fake_claude import Reply, message_body
from tests.labeling.helpers import run_now

pytestmark = pytest.mark.django_db


def test_album_label_answers_202_and_the_run_can_be_followed(admin_client_api, fake_claude):
    album = AlbumFactory()
    images = [make_image(album=album) for _ in range(3)]
    response = admin_client_api.post(f"/api/albums/{album.pk}/label/", {})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["labeler"] == "claude"  # a key is set: Claude by default
    assert body["image_ids"] == [i.pk for i in images] and body["progress_total"] == 3
    run_now(LabelingRun.objects.get(pk=body["id"]))
    followed = admin_client_api.get(f"/api/labeling/runs/{body['id']}/").json()
    assert followed["status"] == "succeeded" and followed["succeeded_count"] == 3
    assert followed["progress"] == 1.0 and followed["input_tokens"] == 3600
    assert admin_client_api.get("/api/labeling/runs/?labeler=claude").json()["count"] == 1


def test_empty_album_is_a_400_saying_so(admin_client_api):
    album = AlbumFactory(name="Empty one")
    error = assert_envelope(
        admin_client_api.post(f"/api/albums/{album.pk}/label/", {"labeler": "nudenet"}), 400, "album_empty"
    )
    assert "Empty one" in error["message"] and "no images" in error["message"]
    assert not LabelingRun.objects.exists()


def test_album_with_nothing_left_to_label_is_a_400_unless_forced(admin_client_api):
    album = AlbumFactory(name="Done")
    images = [make_image(album=album) for _ in range(2)]
    for image in images:
        LabelerResult.objects.create(image=image, labeler="nudenet", labeled_at="2026-01-01T00:00:00Z")
    error = assert_envelope(
        admin_client_api.post(f"/api/albums/{album.pk}/label/", {"labeler": "nudenet"}), 400, "nothing_to_label"
    )
    assert "already labeled by nudenet" in error["message"] and "force" in error["message"]
    assert error["details"] == {"labeler": "nudenet", "already_labeled": 2}
    assert not LabelingRun.objects.exists()
    forced = admin_client_api.post(f"/api/albums/{album.pk}/label/", {"labeler": "nudenet", "force": True})
    assert forced.status_code == 202 and forced.json()["image_ids"] == [i.pk for i in images]


def test_images_labeled_by_another_labeler_are_not_skipped(admin_client_api):
    album = AlbumFactory()
    done, fresh = make_image(album=album), make_image(album=album)
    LabelerResult.objects.create(image=done, labeler="nudenet", labeled_at="2026-01-01T00:00:00Z")
    body = admin_client_api.post(f"/api/albums/{album.pk}/label/", {"labeler": "nudenet"}).json()
    assert body["image_ids"] == [fresh.pk] and body["skipped_count"] == 1


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"labeler": "gpt"}, "validation_error"),
        ({"force": "maybe"}, "validation_error"),
        ({"extra": 1}, "validation_error"),
    ],
)
def test_bad_start_requests_are_refused(admin_client_api, payload, code):
    album = AlbumFactory()
    make_image(album=album)
    assert_envelope(admin_client_api.post(f"/api/albums/{album.pk}/label/", payload), 400, code)
    assert not LabelingRun.objects.exists()


def test_starting_needs_an_admin_and_an_existing_target(api_client, user_client_api, admin_client_api):
    album = AlbumFactory()
    image = make_image(album=album)
    assert_envelope(api_client.post(f"/api/albums/{album.pk}/label/", {}), 401)
    assert_envelope(user_client_api.post(f"/api/images/{image.pk}/label/", {}), 403)
    assert_envelope(user_client_api.get("/api/labeling/runs/"), 403)
    assert_envelope(admin_client_api.post("/api/albums/999999/label/", {}), 404)
    assert_envelope(admin_client_api.post("/api/images/999999/label/", {}), 404)
    assert not LabelingRun.objects.exists()


def test_image_label_refuses_an_image_already_labeled(admin_client_api):
    image = make_image()
    LabelerResult.objects.create(image=image, labeler="nudenet", labeled_at="2026-01-01T00:00:00Z")
    error = assert_envelope(
        admin_client_api.post(f"/api/images/{image.pk}/label/", {"labeler": "nudenet"}), 400, "nothing_to_label"
    )
    assert f"image #{image.pk}" in error["message"]


def test_a_missing_or_corrupt_file_fails_that_image_only(fake_claude):
    broken, missing, good = make_image(), make_image(), make_image()
    with default_storage.open(broken.file.name, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n not really")
    default_storage.delete(missing.file.name)
    run = run_now(services.start_labeling_run(image_ids=[broken.pk, missing.pk, good.pk], labeler="claude"))
    assert run.status == JobStatus.SUCCEEDED
    errors = {f["image_id"]: f["error"] for f in run.failures}
    assert "cannot be decoded" in errors[broken.pk] and "missing from storage" in errors[missing.pk]
    assert run.succeeded_count == 1 and good.labels.exists()
    assert all("/" not in error for error in errors.values())  # no path in what operators read


def test_an_image_deleted_after_the_start_is_counted_as_failed(fake_claude):
    gone, kept = make_image(), make_image()
    gone_id = gone.pk
    run = services.start_labeling_run(image_ids=[gone_id, kept.pk], labeler="claude")
    gone.delete()
    run = run_now(run)
    assert run.failures == [{"image_id": gone_id, "error": "The image was deleted after the run was started."}]
    assert run.succeeded_count == 1


def test_all_images_failing_fails_the_run_with_the_first_reason(fake_claude):
    fake_claude.then(Reply(200, message_body("nope")))
    run = run_now(services.start_labeling_run(image_ids=[make_image().pk, make_image().pk], labeler="claude"))
    assert run.status == JobStatus.FAILED and run.failed_count == 2
    assert "All 2 image(s) failed. First error: Claude's answer is not one JSON object" in run.error_message


def test_cancel_mid_run_stops_after_the_current_image(fake_claude, admin_client_api):
    images = [make_image() for _ in range(4)]
    run = services.start_labeling_run(image_ids=[i.pk for i in images], labeler="claude")
    original_label = services.store_labeler_result
    calls = []

    def store_then_cancel(*args, **kwargs):
        original_label(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # an operator presses cancel while the second image is being labeled
            assert admin_client_api.post(f"/api/labeling/runs/{run.pk}/cancel/").status_code == 200

    services.store_labeler_result = store_then_cancel
    try:
        run = run_now(run)
    finally:
        services.store_labeler_result = original_label
    assert run.status == JobStatus.CANCELLED
    assert run.succeeded_count == 2 and run.progress_current == 2
    assert [bool(i.labels.exists()) for i in images] == [True, True, False, False]


def test_retry_requeues_a_cancelled_run_with_counters_reset(admin_client_api):
    image = make_image()
    run = services.start_labeling_run(image_ids=[image.pk], labeler="nudenet")
    assert admin_client_api.post(f"/api/labeling/runs/{run.pk}/cancel/").json()["status"] == "cancelled"
    retried = admin_client_api.post(f"/api/labeling/runs/{run.pk}/retry/")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert_envelope(admin_client_api.post(f"/api/labeling/runs/{run.pk}/retry/"), 409, "job_not_retryable")
    run.refresh_from_db()
    assert (run.succeeded_count, run.failed_count, run.failures) == (0, 0, [])


def test_an_empty_image_list_is_refused():
    from imagineer.core.errors import ImagineerError

    with pytest.raises(ImagineerError, match="at least one image"):
        services.start_labeling_run(image_ids=[], labeler="nudenet")
    assert not LabelingRun.objects.exists()


def test_tokens_are_counted_when_storing_a_good_answer_fails(fake_claude, monkeypatch):
    image = make_image()

    def store_fails(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "store_labeler_result", store_fails)
    run = run_now(services.start_labeling_run(image_ids=[image.pk], labeler="claude"))
    assert run.failed_count == 1 and "database went away" in run.failures[0]["error"]
    assert (run.input_tokens, run.output_tokens) == (1200, 80)


def test_failures_kept_on_the_run_are_bounded(fake_claude, monkeypatch):
    monkeypatch.setattr(services, "MAX_FAILURES_KEPT", 2)
    fake_claude.then(Reply(200, message_body("nope")))
    images = [make_image() for _ in range(3)]
    run = run_now(services.start_labeling_run(image_ids=[i.pk for i in images], labeler="claude"))
    assert run.failed_count == 3 and len(run.failures) == 2
