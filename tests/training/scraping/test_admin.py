"""Scrape jobs in admin: start one from the add form, read a finished one's counters."""

import pytest

from tests.training.scraping.helpers import photo, run_scrape
from training.models import ScrapeJob

pytestmark = pytest.mark.django_db

ADD = "/admin/training/scrapejob/add/"


def test_the_add_form_starts_a_queued_job(admin_browser, admin_user):
    response = admin_browser.post(
        ADD,
        {
            "url": "http://127.0.0.1:9/",
            "name": "",
            "max_depth": "1",
            "max_images": "",
            "overrides_json": '{"min_width": 512}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ScrapeJob.objects.get()
    assert (job.status, job.start_url, job.created_by) == ("queued", "http://127.0.0.1:9/", admin_user)
    assert job.overrides == {"min_width": 512, "max_depth": 1}
    assert (job.config["max_depth"], job.config["min_width"]) == (1, 512)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"url": "ftp://127.0.0.1/"}, "must start with http:// or https://"),
        ({"url": "http://127.0.0.1/", "max_depth": "99"}, "less than or equal to 10"),
        ({"url": "http://127.0.0.1/", "overrides_json": "{not json"}, "Not valid JSON"),
        ({"url": "http://127.0.0.1/", "overrides_json": '{"colour": "red"}'}, "colour: Unknown setting"),
    ],
)
def test_the_add_form_shows_what_is_wrong_and_starts_nothing(admin_browser, form, message):
    response = admin_browser.post(ADD, {"name": "", "max_depth": "", "max_images": "", "overrides_json": "", **form})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ScrapeJob.objects.exists()


def test_a_finished_job_shows_its_counters_and_album(admin_browser, site):
    site.page("/", '<img src="/a.jpg"><img src="/b.svg">')
    site.file("/a.jpg", photo(110))
    job = run_scrape(site.url("/"))

    listing = admin_browser.get("/admin/training/scrapejob/").content.decode()
    assert job.name in listing
    page = admin_browser.get(f"/admin/training/scrapejob/{job.pk}/change/").content.decode()
    assert f"/admin/albums/album/{job.album_id}/change/" in page
    assert "<td>ui_image</td><td>1</td>" in page
