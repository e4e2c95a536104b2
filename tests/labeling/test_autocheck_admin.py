"""The NSFW autocheck in the console: the image list's check column and filter, "Check NSFW now" (a
failed check's retry), the image page's state, reason and check jobs, and the check jobs' pages."""

from __future__ import annotations

import re

import pytest

from albums.models import Image, NsfwCheck
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from labeling import autocheck
from labeling.models import NsfwCheckJob
from tests.factories import make_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def autocheck_on(settings):
    settings.IMAGINEER_NSFW_AUTOCHECK = True


def listed(response) -> set[int]:
    """The image ids of a changelist page (its rows' action checkboxes)."""
    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())}


def messages_of(response, level: str | None = None) -> list[str]:
    return [str(m) for m in response.context["messages"] if level is None or m.level_tag == level]


def check_now(client, *images):
    return client.post(
        "/admin/albums/image/",
        {"action": "check_nsfw_now", "_selected_action": [image.pk for image in images]},
        follow=True,
    )


@pytest.fixture
def states():
    return {state: make_image(nsfw_check=state) for state in NsfwCheck.values}


def test_the_image_list_shows_the_check_and_filters_what_nobody_else_sees_yet(admin_browser, states):
    page = admin_browser.get("/admin/albums/image/")
    html = page.content.decode()
    assert "Not checked or check failed" in html and "column-nsfw_check" in html
    unsettled = admin_browser.get("/admin/albums/image/?nsfw_check=unsettled")
    assert listed(unsettled) == {states["pending"].pk, states["failed"].pk}
    for state, image in states.items():
        assert listed(admin_browser.get(f"/admin/albums/image/?nsfw_check={state}")) == {image.pk}
    assert listed(page) == {image.pk for image in states.values()}


def test_check_nsfw_now_retries_a_failed_check_and_it_passes(autocheck_on, admin_browser, admin_user, api_client):
    image = make_image(nsfw_check=NsfwCheck.FAILED)
    Image.objects.filter(pk=image.pk).update(nsfw_check_error="The Claude API answered 500.", nsfw_check_attempts=3)

    response = check_now(admin_browser, image)

    [job] = NsfwCheckJob.objects.all()
    assert (job.status, job.created_by, list(job.images.all())) == (JobStatus.QUEUED, admin_user, [image])
    [message] = messages_of(response, "success")
    assert f"NSFW check #{job.pk}" in message and f"/admin/labeling/nsfwcheckjob/{job.pk}/change/" in message
    image.refresh_from_db()
    assert (image.nsfw_check, image.nsfw_check_attempts, image.nsfw_check_error) == (NsfwCheck.PENDING, 1, "")

    jobs.run_job(NsfwCheckJob, job.pk, autocheck.run_nsfw_check)
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.PASSED
    assert api_client.get(f"/api/images/{image.pk}/").status_code == 200


def test_check_nsfw_now_on_many_leaves_those_already_being_checked_to_their_job(autocheck_on, admin_browser):
    held = make_image(nsfw_check=NsfwCheck.PENDING)
    first = autocheck.request_nsfw_checks([held.pk])
    others = [make_image(), make_image(nsfw_check=NsfwCheck.PASSED)]

    response = check_now(admin_browser, held, *others)

    job = NsfwCheckJob.objects.exclude(pk=first.pk).get()
    assert set(job.images.all()) == set(others)
    assert any("1 already in a queued or running check" in m for m in messages_of(response, "success"))
    assert {image.nsfw_check for image in Image.objects.all()} == {NsfwCheck.PENDING}

    again = check_now(admin_browser, held)
    assert messages_of(again, "warning") == ["A queued or running NSFW check already holds every selected image."]
    assert NsfwCheckJob.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_check_nsfw_now_with_the_queue_unreachable_says_so(autocheck_on, admin_browser, monkeypatch):
    """Transactional: the check job's message is sent when the action's transaction commits."""
    image = make_image(is_public=False)  # needs no check yet: nothing queued before the broker goes

    def unreachable(job):
        raise ConnectionError("broker down")

    monkeypatch.setattr(jobs, "_send_task", unreachable)
    response = check_now(admin_browser, image)
    assert response.status_code == 200
    [error] = messages_of(response, "error")
    assert "task queue is unreachable" in error
    assert NsfwCheckJob.objects.get().status == JobStatus.FAILED
    image.refresh_from_db()
    assert image.nsfw_check == NsfwCheck.PENDING  # hidden; the sweep asks for its check again


def test_the_image_page_shows_the_check_its_reason_and_its_jobs(autocheck_on, admin_browser, settings):
    settings.ANTHROPIC_API_KEY = ""
    image = make_image(nsfw_check=NsfwCheck.PENDING)
    job = autocheck.request_nsfw_checks([image.pk])
    NsfwCheckJob.objects.filter(pk=job.pk).update(labeler="claude")
    jobs.run_job(NsfwCheckJob, job.pk, autocheck.run_nsfw_check)

    html = admin_browser.get(f"/admin/albums/image/{image.pk}/change/").content.decode()
    assert "Check failed" in html and "ANTHROPIC_API_KEY" in html  # the state and the reason
    assert f"/admin/labeling/nsfwcheckjob/{job.pk}/change/" in html and "NSFW check jobs" in html


def test_the_check_jobs_pages_show_their_images_and_failures(autocheck_on, admin_browser):
    good, gone = make_image(nsfw_check=NsfwCheck.PENDING), make_image(nsfw_check=NsfwCheck.PENDING)
    job = autocheck.request_nsfw_checks([good.pk, gone.pk])
    gone.file.storage.delete(gone.file.name)
    jobs.run_job(NsfwCheckJob, job.pk, autocheck.run_nsfw_check)

    listing = admin_browser.get("/admin/labeling/nsfwcheckjob/").content.decode()
    assert f"/admin/labeling/nsfwcheckjob/{job.pk}/change/" in listing
    page = admin_browser.get(f"/admin/labeling/nsfwcheckjob/{job.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/admin/albums/image/{good.pk}/change/" in html and f"/admin/albums/image/{gone.pk}/change/" in html
    assert "The image&#x27;s file is missing from storage." in html


def test_a_failed_check_job_is_retried_from_its_page(autocheck_on, admin_browser, settings):
    settings.ANTHROPIC_API_KEY = ""
    image = make_image(nsfw_check=NsfwCheck.PENDING)
    job = autocheck.request_nsfw_checks([image.pk])
    NsfwCheckJob.objects.filter(pk=job.pk).update(labeler="claude")
    jobs.run_job(NsfwCheckJob, job.pk, autocheck.run_nsfw_check)
    settings.ANTHROPIC_API_KEY = "sk-ant-test-not-a-real-key"

    admin_browser.post("/admin/labeling/nsfwcheckjob/", {"action": "retry_jobs", "_selected_action": [job.pk]})

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.failed_count == 0
