"""/api/training/scrapes/: admin only; bad input is a 400 naming the field, and leaves no job behind."""

import pytest

from tests.assertions import assert_envelope
from tests.training.scraping.helpers import TEST_SCRAPING_CONFIG, photo, run_scrape
from training.models import ScrapeJob

pytestmark = pytest.mark.django_db

URL = "/api/training/scrapes/"


def test_anonymous_callers_are_asked_to_sign_in(api_client):
    assert_envelope(api_client.get(URL), 401, "not_authenticated")
    assert_envelope(api_client.post(URL, {"url": "http://127.0.0.1/"}, format="json"), 401)
    assert not ScrapeJob.objects.exists()


def test_plain_users_are_refused(user_client_api):
    assert_envelope(user_client_api.get(URL), 403, "permission_denied")
    assert_envelope(user_client_api.post(URL, {"url": "http://127.0.0.1/"}, format="json"), 403)
    assert not ScrapeJob.objects.exists()


def test_create_queues_a_job_with_the_defaults_and_its_overrides(admin_client_api, admin_user):
    response = admin_client_api.post(
        URL,
        {"url": "HTTP://127.0.0.1:8000/gallery#top", "max_depth": 1, "overrides": {"same_host_only": False}},
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["start_url"], body["name"]) == (
        "queued",
        "http://127.0.0.1:8000/gallery",
        "Scrape of 127.0.0.1",
    )
    assert body["overrides"] == {"same_host_only": False, "max_depth": 1}
    assert body["config"]["max_depth"] == 1 and body["config"]["same_host_only"] is False
    assert body["config"]["min_width"] == TEST_SCRAPING_CONFIG["min_width"]  # the runtime config's default
    assert (body["album"], body["images_kept"], body["rejected"]) == (None, 0, {})
    assert ScrapeJob.objects.get(pk=body["id"]).created_by == admin_user


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "ftp://127.0.0.1/pub/"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://user:secret@127.0.0.1/"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({"url": "http://127.0.0.1/", "max_depth": 11}, "max_depth"),
        ({"url": "http://127.0.0.1/", "max_images": 0}, "max_images"),
        ({"url": "http://127.0.0.1/", "max_images": "many"}, "max_images"),
        ({"url": "http://127.0.0.1/", "overrides": {"retries": 99}}, "overrides.retries"),
        (
            {"url": "http://127.0.0.1/", "overrides": {"request_timeout_seconds": 0}},
            "overrides.request_timeout_seconds",
        ),
        ({"url": "http://127.0.0.1/", "overrides": {"user_agent": "Bot\r\nX-Evil: 1"}}, "overrides.user_agent"),
        ({"url": "http://127.0.0.1/", "overrides": {"follow_everything": True}}, "overrides.follow_everything"),
        ({"url": "http://127.0.0.1/", "overrides": ["max_depth"]}, "overrides"),
        ({"url": "http://127.0.0.1/", "max_depth": 1, "overrides": {"max_depth": 2}}, "max_depth"),
        ({"url": "http://127.0.0.1/", "depth": 3}, "depth"),
        ({}, "url"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(admin_client_api, media_root, payload, field):
    error = assert_envelope(admin_client_api.post(URL, payload, format="json"), 400, "validation_error")
    assert error["message"].startswith(f"Invalid input: {field}:"), error
    assert not ScrapeJob.objects.exists()
    assert not any(media_root.iterdir())


def test_detail_shows_counters_progress_and_the_album(admin_client_api, site):
    site.page("/", '<img src="/a.jpg"><img src="/tiny.jpg">')
    site.file("/a.jpg", photo(100))
    site.file("/tiny.jpg", photo(101, (20, 20)))
    job = run_scrape(site.url("/"))

    body = admin_client_api.get(f"{URL}{job.pk}/").json()
    assert (body["status"], body["progress"]) == ("succeeded", 1.0)
    assert (body["pages_fetched"], body["images_discovered"], body["images_downloaded"], body["images_kept"]) == (
        1,
        2,
        2,
        1,
    )
    assert body["rejected"] == {"too_small": 1}
    assert (body["album"], body["album_name"]) == (job.album_id, job.name)
    listed = admin_client_api.get(URL).json()
    assert [item["id"] for item in listed["results"]] == [job.pk]


def test_cancel_a_queued_job_then_again(admin_client_api):
    job_id = admin_client_api.post(URL, {"url": "http://127.0.0.1/"}, format="json").json()["id"]
    cancelled = admin_client_api.post(f"{URL}{job_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_envelope(admin_client_api.post(f"{URL}{job_id}/cancel/"), 409, "job_not_cancellable")


def test_no_response_carries_a_filesystem_path(admin_client_api, site, settings):
    site.page("/", '<img src="/a.jpg">')
    site.file("/a.jpg", photo(102))
    job = run_scrape(site.url("/"))
    response = admin_client_api.get(f"{URL}{job.pk}/")
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["images_kept"]) == (job.pk, 1)  # the detail of a job that stored
    text = response.content.decode()
    assert str(settings.MEDIA_ROOT) not in text and str(settings.IMAGINEER_SCRATCH_DIR) not in text
