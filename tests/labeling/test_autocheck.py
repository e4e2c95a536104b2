"""Nothing becomes public before it was checked: the NSFW autocheck of new public images.

Uploaded, generated and imported images that are to be public wait for a check job (labeling's
NsfwCheckJob) and are shown to their owner and admins only until it passed; the job runs here,
in this process, through the real job lifecycle (tests/labeling/test_worker_autocheck.py runs it
on a worker). The test settings turn the autocheck off for the rest of the suite; `autocheck`
turns it on.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import yaml
from django.utils import timezone

from albums import services as album_services
from albums.models import Image, NsfwCheck
from generation import services as generation_services
from generation.models import GenerationJob
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from labeling import autocheck
from labeling.models import Label, LabelerResult, LabelType, NsfwCheckJob
from tests.assertions import assert_envelope
from tests.factories import AlbumFactory, image_bytes, make_image, scene_png
from tests.labeling.fake_claude import answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def autocheck_on(settings):
    settings.IMAGINEER_NSFW_AUTOCHECK = True


@pytest.fixture
def checker(runtime_config_file):
    """Set the runtime config's autocheck labeler (the file is re-read when it changes)."""

    def use(labeler: str) -> None:
        runtime_config_file.write_text(yaml.safe_dump({"labeling": {"autocheck_labeler": labeler}}), encoding="utf-8")

    return use


def run_check(job: NsfwCheckJob) -> NsfwCheckJob:
    """Run a queued check job in this process, through the real job lifecycle."""
    jobs.run_job(NsfwCheckJob, job.pk, autocheck.run_nsfw_check)
    job.refresh_from_db()
    return job


def store(user=None, data: bytes | None = None, **fields) -> Image:
    image, created = album_services.store_image(io.BytesIO(data or image_bytes(size=(96, 72))), user=user, **fields)
    assert created
    return image


def ids(response) -> set[int]:
    return {item["id"] for item in response.json()["results"]}


def readers(request) -> dict:
    return {
        name: request.getfixturevalue(fixture)
        for name, fixture in (
            ("anon", "api_client"),
            ("owner", "user_client_api"),
            ("other", "other_user_client_api"),
            ("admin", "admin_client_api"),
        )
    }


def seen_by(client, image: Image) -> tuple[bool, ...]:
    """Whether the client finds the image in the list, its detail, its file and its thumbnail."""
    answers = [client.get(f"/api/images/{image.pk}/{suffix}") for suffix in ("", "file", "thumbnail")]
    for response in answers:
        if response.status_code != 200:
            assert_envelope(response, 404, "not_found")  # the same answer as an id that does not exist
    return (image.pk in ids(client.get("/api/images/")), *(response.status_code == 200 for response in answers))


SEEN, UNSEEN = (True, True, True, True), (False, False, False, False)


# --- Pending: owner and admins only ---------------------------------------------------------------


def test_an_admins_upload_waits_for_its_check_hidden_from_everyone_else(
    autocheck_on, request, django_capture_on_commit_callbacks
):
    clients = readers(request)
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["admin"].post("/api/images/", {"file": io.BytesIO(image_bytes())}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["nsfw_check"] == "pending" and response.json()["is_public"] is True
    image = Image.objects.get(pk=response.json()["id"])
    [job] = NsfwCheckJob.objects.all()
    assert list(job.images.all()) == [image] and job.status == JobStatus.QUEUED and job.labeler == "nudenet"
    assert (image.nsfw_check, image.nsfw_check_attempts) == (NsfwCheck.PENDING, 1)
    assert {name: seen_by(client, image) for name, client in clients.items()} == {
        "anon": UNSEEN,
        "owner": UNSEEN,
        "other": UNSEEN,
        "admin": SEEN,
    }


def test_a_users_public_image_is_theirs_and_the_admins_until_checked(autocheck_on, request, plain_user):
    clients = readers(request)
    image = store(user=plain_user, is_public=True)
    assert image.nsfw_check == NsfwCheck.PENDING
    assert {name: seen_by(client, image) for name, client in clients.items()} == {
        "anon": UNSEEN,
        "owner": SEEN,
        "other": UNSEEN,
        "admin": SEEN,
    }
    # Not for a shared cache: it is not everyone's yet.
    assert clients["owner"].get(f"/api/images/{image.pk}/file")["Cache-Control"] == "private, no-store"
    detail = clients["owner"].get(f"/api/images/{image.pk}/").json()
    assert detail["nsfw_check"] == "pending" and "nsfw_check_error" not in detail  # the reason is the admins'


def test_a_private_image_needs_no_check_and_a_failed_one_stays_hidden(autocheck_on, request, plain_user):
    clients = readers(request)
    private = store(user=plain_user, is_public=False)
    assert (private.nsfw_check, NsfwCheckJob.objects.count()) == (NsfwCheck.NOT_REQUIRED, 0)
    failed = make_image(user=plain_user, nsfw_check=NsfwCheck.FAILED)
    assert seen_by(clients["anon"], failed) == UNSEEN and seen_by(clients["other"], failed) == UNSEEN
    assert seen_by(clients["owner"], failed) == SEEN


def test_album_pages_and_counts_leave_unchecked_images_out(autocheck_on, api_client, plain_user):
    album = AlbumFactory(is_public=True)
    checked = make_image(album=album, nsfw_check=NsfwCheck.PASSED)
    store(user=plain_user, album=album)  # pending
    make_image(album=album, nsfw_check=NsfwCheck.FAILED)
    assert api_client.get(f"/api/albums/{album.pk}/").json()["image_count"] == 1
    assert ids(api_client.get(f"/api/albums/{album.pk}/images/")) == {checked.pk}
    assert [a["image_count"] for a in api_client.get("/api/albums/").json()["results"]] == [1]


def test_a_generation_job_succeeds_before_its_images_are_checked(
    autocheck_on, tiny_model, plain_user, api_client, user_client_api, django_capture_on_commit_callbacks
):
    job = generation_services.start_generation_job(user=plain_user, model=tiny_model, prompt="a kite", steps=2)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.run_job(GenerationJob, job.pk, generation_services.run_generation_job)
    job.refresh_from_db()
    [image] = job.images.all()
    [check] = NsfwCheckJob.objects.all()
    # The generation job ended with its images stored; their check waits in the labeling queue.
    assert job.status == JobStatus.SUCCEEDED and check.status == JobStatus.QUEUED
    assert image.nsfw_check == NsfwCheck.PENDING and list(check.images.all()) == [image]
    assert seen_by(api_client, image) == UNSEEN and seen_by(user_client_api, image) == SEEN

    assert run_check(check).status == JobStatus.SUCCEEDED
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.PASSED and image.nsfw_check_at is not None
    assert seen_by(api_client, image) == SEEN


def test_a_batch_of_generated_images_is_checked_by_one_job(
    autocheck_on, tiny_model, plain_user, runtime_config_file, django_capture_on_commit_callbacks
):
    runtime_config_file.write_text(yaml.safe_dump({"generation": {"max_batch": 2}}), encoding="utf-8")
    job = generation_services.start_generation_job(
        user=plain_user, model=tiny_model, prompt="a kite", steps=2, count=3, width=64, height=64
    )
    with django_capture_on_commit_callbacks(execute=True):
        jobs.run_job(GenerationJob, job.pk, generation_services.run_generation_job)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    # Two diffusers batches (2 + 1 images): one check job each, covering exactly that batch's images.
    checks = [sorted(check.images.values_list("seed", flat=True)) for check in NsfwCheckJob.objects.order_by("pk")]
    assert checks == [[job.seed, job.seed + 1], [job.seed + 2]]


def test_images_stored_before_a_batch_fails_are_still_checked(autocheck_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with album_services.nsfw_checks_together():
            first = store(data=scene_png((200, 150)))
            second = store(data=scene_png((220, 160)))
            raise RuntimeError("the third image could not be encoded")
    [check] = NsfwCheckJob.objects.all()
    assert set(check.images.values_list("pk", flat=True)) == {first.pk, second.pk}


# --- The check job --------------------------------------------------------------------------------


def test_a_safe_image_passes_and_is_rated_as_a_labeling_run_would(
    autocheck_on, api_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        image = store(data=scene_png())
    job = run_check(NsfwCheckJob.objects.get())
    assert (job.status, job.passed_count, job.failed_count) == (JobStatus.SUCCEEDED, 1, 0)
    image.refresh_from_db()
    assert (image.nsfw_check, image.nsfw_rating, image.is_nsfw) == (NsfwCheck.PASSED, "SAFE", False)
    assert LabelerResult.objects.get(image=image).labeler == "nudenet"
    assert seen_by(api_client, image) == SEEN


def test_an_image_rated_nsfw_passes_its_check_and_stays_hidden_with_its_labels(
    autocheck_on, checker, fake_claude, api_client, admin_client_api, django_capture_on_commit_callbacks
):
    checker("claude")
    fake_claude.then(answer(caption="A nude figure study.", tags=("figure study",), rating="EXPLICIT"))
    with django_capture_on_commit_callbacks(execute=True):
        image = store()
    job = run_check(NsfwCheckJob.objects.get())
    assert (job.labeler, job.status, job.input_tokens) == ("claude", JobStatus.SUCCEEDED, 1200)
    image.refresh_from_db()
    assert (image.nsfw_check, image.is_nsfw, image.nsfw_rating) == (NsfwCheck.PASSED, True, "EXPLICIT")
    assert sorted(Label.objects.filter(image=image).values_list("label_type", "text")) == [
        (LabelType.CAPTION, "A nude figure study."),
        (LabelType.TAG, "figure study"),
    ]
    assert seen_by(api_client, image) == UNSEEN and seen_by(admin_client_api, image) == SEEN


def test_an_admins_manual_flag_wins_over_the_checks_rating(
    autocheck_on, checker, fake_claude, admin_user, django_capture_on_commit_callbacks
):
    """The uploader said NSFW: a SAFE rating from the check never clears it."""
    checker("claude")
    fake_claude.then(answer(rating="SAFE"))
    with django_capture_on_commit_callbacks(execute=True):
        image = store(user=admin_user, is_nsfw=True)
    run_check(NsfwCheckJob.objects.get())
    image.refresh_from_db()
    assert (image.nsfw_check, image.is_nsfw, image.nsfw_flag_source) == (NsfwCheck.PASSED, True, "manual")


def test_claude_without_a_key_fails_the_check_with_the_reason(
    autocheck_on, checker, settings, api_client, django_capture_on_commit_callbacks
):
    checker("claude")
    settings.ANTHROPIC_API_KEY = ""
    with django_capture_on_commit_callbacks(execute=True):
        image = store()
    job = run_check(NsfwCheckJob.objects.get())
    assert job.status == JobStatus.FAILED and "ANTHROPIC_API_KEY" in job.error_message
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.FAILED
    assert "ANTHROPIC_API_KEY" in image.nsfw_check_error and "autocheck_labeler" in image.nsfw_check_error
    assert seen_by(api_client, image) == UNSEEN


def test_one_image_failing_fails_only_its_own_check(autocheck_on, api_client):
    good, broken = store(), store(data=scene_png((240, 160)))
    job = autocheck.request_nsfw_checks([good.pk, broken.pk])  # one job over both, as stored together
    broken.file.storage.delete(broken.file.name)
    job = run_check(job)
    assert (job.status, job.passed_count, job.failed_count) == (JobStatus.SUCCEEDED, 1, 1)
    assert job.failures == [{"image_id": broken.pk, "error": "The image's file is missing from storage."}]
    good.refresh_from_db()
    broken.refresh_from_db()
    assert (good.nsfw_check, broken.nsfw_check) == (NsfwCheck.PASSED, NsfwCheck.FAILED)
    assert broken.nsfw_check_error == "The image's file is missing from storage."
    assert seen_by(api_client, good) == SEEN


def test_a_retried_check_job_checks_its_failed_images_again(autocheck_on, checker, settings):
    checker("claude")
    settings.ANTHROPIC_API_KEY = ""
    image = store()
    job = autocheck.request_nsfw_checks([image.pk])
    assert run_check(job).status == JobStatus.FAILED
    checker("nudenet")
    NsfwCheckJob.objects.filter(pk=job.pk).update(labeler="nudenet")  # as if the key had been set meanwhile
    jobs.retry_job(job)
    assert run_check(job).status == JobStatus.SUCCEEDED
    image.refresh_from_db()
    assert (image.nsfw_check, image.nsfw_check_error) == (NsfwCheck.PASSED, "")


# --- The switch -----------------------------------------------------------------------------------


def test_autocheck_off_shows_images_at_once_and_queues_no_check(
    settings, admin_client_api, api_client, django_capture_on_commit_callbacks
):
    settings.IMAGINEER_NSFW_AUTOCHECK = False
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_api.post("/api/images/", {"file": io.BytesIO(image_bytes())}, format="multipart")
        private = store(is_public=False)
        album_services.set_image_flags([private.pk], is_public=True)
    image = Image.objects.get(pk=response.json()["id"])
    private.refresh_from_db()
    assert (image.nsfw_check, private.nsfw_check) == (NsfwCheck.NOT_REQUIRED, NsfwCheck.NOT_REQUIRED)
    assert seen_by(api_client, image) == SEEN and seen_by(api_client, private) == SEEN
    assert NsfwCheckJob.objects.count() == 0


@pytest.mark.parametrize("how", ["bulk-flags", "patch", "admin action"])
def test_a_private_image_made_public_waits_for_its_check(
    how, autocheck_on, admin_client_api, admin_browser, api_client, django_capture_on_commit_callbacks
):
    image = store(is_public=False)
    with django_capture_on_commit_callbacks(execute=True):
        if how == "bulk-flags":
            response = admin_client_api.post("/api/images/bulk-flags/", {"image_ids": [image.pk], "is_public": True})
        elif how == "patch":
            response = admin_client_api.patch(f"/api/images/{image.pk}/", {"is_public": True})
        else:
            response = admin_browser.post(
                "/admin/albums/image/", {"action": "make_public", "_selected_action": [image.pk]}, follow=True
            )
    assert response.status_code == 200
    image.refresh_from_db()
    assert (image.is_public, image.nsfw_check) == (True, NsfwCheck.PENDING)
    assert list(NsfwCheckJob.objects.get().images.all()) == [image]
    assert seen_by(api_client, image) == UNSEEN


def test_a_checked_image_made_private_and_public_again_is_not_checked_again(autocheck_on, api_client):
    image = make_image(nsfw_check=NsfwCheck.PASSED)
    album_services.set_image_flags([image.pk], is_public=False)
    album_services.set_image_flags([image.pk], is_public=True)
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.PASSED and NsfwCheckJob.objects.count() == 0
    assert seen_by(api_client, image) == SEEN


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_cannot_be_reached_never_fails_the_upload(autocheck_on, admin_client_api, monkeypatch):
    """The image is stored and waits, hidden; the sweep asks for its check again.

    Transactional: the check is asked for after the upload's commit, its message sent after the
    check job's, as in production (a captured on-commit would run the send outside the request).
    """

    def unreachable(job):
        raise ConnectionError("broker down")

    monkeypatch.setattr(jobs, "_send_task", unreachable)
    response = admin_client_api.post("/api/images/", {"file": io.BytesIO(image_bytes())}, format="multipart")
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["id"])
    assert image.nsfw_check == NsfwCheck.PENDING
    assert NsfwCheckJob.objects.get().status == JobStatus.FAILED  # its message was never sent


# --- The sweep ------------------------------------------------------------------------------------


def later(minutes: float = 5):
    return timezone.now() + timedelta(minutes=minutes)


def test_the_sweep_checks_again_an_image_whose_check_job_was_reaped(autocheck_on, settings):
    image = store()
    job = autocheck.request_nsfw_checks([image.pk])
    # A worker claimed it and died: no heartbeat since long ago, then the reaper.
    stale = timezone.now() - timedelta(seconds=settings.IMAGINEER_JOB_STALE_AFTER_SECONDS + 60)
    assert jobs.claim_job(NsfwCheckJob, job.pk) is not None
    NsfwCheckJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)  # the worker stopped beating
    assert jobs.reap_stale_jobs() == 1
    Image.objects.filter(pk=image.pk).update(nsfw_check_at=timezone.now() - timedelta(minutes=5))

    assert autocheck.sweep_nsfw_checks() == (1, 0)
    again = NsfwCheckJob.objects.exclude(pk=job.pk).get()
    assert list(again.images.all()) == [image] and again.status == JobStatus.QUEUED
    image.refresh_from_db()
    assert (image.nsfw_check, image.nsfw_check_attempts) == (NsfwCheck.PENDING, 2)
    assert run_check(again).status == JobStatus.SUCCEEDED
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.PASSED


def test_the_sweep_leaves_held_and_just_marked_images_alone(autocheck_on):
    held = store()
    autocheck.request_nsfw_checks([held.pk])  # queued: a worker will reach it
    just_marked = store()  # its process has not asked for its check yet (a moment ago)
    assert autocheck.sweep_nsfw_checks() == (0, 0)
    assert autocheck.sweep_nsfw_checks(now=later()) == (1, 0)  # only the one no job holds
    assert NsfwCheckJob.objects.filter(images=just_marked).count() == 1
    assert NsfwCheckJob.objects.filter(images=held).count() == 1


def test_the_sweep_gives_up_after_the_attempts_and_fails_the_check_with_why(autocheck_on, api_client):
    image = store()
    for attempt in range(1, autocheck.MAX_CHECK_ATTEMPTS + 1):
        job = autocheck.request_nsfw_checks([image.pk]) if attempt == 1 else NsfwCheckJob.objects.latest("pk")
        # Each job's message is lost and the lost-job sweep fails it unclaimed.
        NsfwCheckJob.objects.filter(pk=job.pk).update(  # as resend_lost_jobs fails it
            status=JobStatus.FAILED, error_message="No worker consumes queue `labeling`."
        )
        image.refresh_from_db()
        assert (image.nsfw_check, image.nsfw_check_attempts) == (NsfwCheck.PENDING, attempt)
        requeued, failed = autocheck.sweep_nsfw_checks(now=later(attempt * 5))
        assert (requeued, failed) == ((1, 0) if attempt < autocheck.MAX_CHECK_ATTEMPTS else (0, 1))
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.FAILED
    assert f"after {autocheck.MAX_CHECK_ATTEMPTS} attempt(s)" in image.nsfw_check_error
    assert "No worker consumes queue `labeling`." in image.nsfw_check_error
    assert NsfwCheckJob.objects.count() == autocheck.MAX_CHECK_ATTEMPTS
    assert seen_by(api_client, image) == UNSEEN
    assert autocheck.sweep_nsfw_checks(now=later(60)) == (0, 0)  # failed is final until an admin retries


def test_the_sweep_checks_an_image_whose_process_died_before_asking(autocheck_on):
    image = store()  # no on-commit here: the request never ran, as if the process died after commit
    assert NsfwCheckJob.objects.count() == 0
    assert autocheck.sweep_nsfw_checks(now=later()) == (1, 0)
    assert list(NsfwCheckJob.objects.get().images.all()) == [image]


def test_the_sweep_runs_as_a_beat_task_on_the_maintenance_queue():
    from imagineer.celery import app, queue_for_task
    from labeling import tasks

    name = "labeling.tasks.sweep_nsfw_checks"
    assert tasks.sweep_nsfw_checks.name == name and queue_for_task(name) == "maintenance"
    assert app.conf.beat_schedule["sweep-nsfw-checks"]["task"] == name
    assert queue_for_task(NsfwCheckJob.task_name) == "labeling"


# --- The legacy importer --------------------------------------------------------------------------


def test_imported_public_images_wait_for_one_check_per_batch(
    autocheck_on, tmp_path, api_client, django_capture_on_commit_callbacks
):
    from tests.legacy.helpers import png, run_import

    outputs, packs = tmp_path / "outputs", tmp_path / "packs"
    for n in range(3):
        png(outputs / f"2025011{n}_120000_sample.png", 40 + n)
    packs.mkdir()
    with django_capture_on_commit_callbacks(execute=True):
        run_import(outputs, packs)
    images = set(Image.objects.all())
    assert len(images) == 3 and {image.nsfw_check for image in images} == {NsfwCheck.PENDING}
    [job] = NsfwCheckJob.objects.all()
    assert set(job.images.all()) == images
    assert ids(api_client.get("/api/images/")) == set()


# --- The API filter -------------------------------------------------------------------------------


def test_the_image_list_filters_by_check_state(autocheck_on, admin_client_api, user_client_api, plain_user):
    pending = store(user=plain_user)
    failed = make_image(nsfw_check=NsfwCheck.FAILED)
    passed = make_image(nsfw_check=NsfwCheck.PASSED)
    assert ids(admin_client_api.get("/api/images/?nsfw_check=failed")) == {failed.pk}
    assert ids(admin_client_api.get("/api/images/?nsfw_check=pending")) == {pending.pk}
    assert ids(admin_client_api.get("/api/images/?nsfw_check=passed")) == {passed.pk}
    # Others filter within what they may see: their own pending image, nobody's failed one.
    assert ids(user_client_api.get("/api/images/?nsfw_check=pending")) == {pending.pk}
    assert ids(user_client_api.get("/api/images/?nsfw_check=failed")) == set()
    response = admin_client_api.get("/api/images/?nsfw_check=unchecked")
    assert_envelope(response, 400, "validation_error")
    assert "nsfw_check" in response.json()["error"]["details"]["fields"]
