"""Through the API and a real Celery worker on the `scraping` queue: a scrape that succeeds, one cancelled mid-crawl."""

import time

import pytest

from albums.models import Image
from tests.assertions import files_under
from tests.processes import celery_worker, wait_for_final_job
from tests.training.scraping.helpers import photo
from training.models import ScrapeJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

URL = "/api/training/scrapes/"


def test_scrapes_run_and_cancel_on_a_real_worker(admin_client_api, site, media_root, scratch_dir):
    site.page("/", '<img src="/a.jpg" alt="First"><a href="/more.html">more</a>')
    site.page("/more.html", '<img src="/b.jpg"><img src="/b.jpg"><img src="/icon.png">')
    site.file("/a.jpg", photo(120))
    site.file("/b.jpg", photo(121))
    # A long, slow chain of pages: the second job is cancelled while it walks it.
    site.page("/slow/0.html", '<img src="/c.jpg"><a href="/slow/1.html">next</a>')
    site.file("/c.jpg", photo(122))
    for n in range(1, 30):
        site.page(f"/slow/{n}.html", f'<a href="/slow/{n + 1}.html">next</a>', delay=0.3)

    with celery_worker(queues="scraping", media_root=media_root) as worker:
        created = admin_client_api.post(URL, {"url": site.url("/")}, format="json")
        assert created.status_code == 202, created.content
        job = wait_for_final_job(ScrapeJob.objects.get(pk=created.json()["id"]), worker=worker)
        assert job.status == "succeeded", (job.error_message, worker.text[-3000:])
        body = admin_client_api.get(f"{URL}{job.pk}/").json()
        assert (body["pages_fetched"], body["images_discovered"], body["images_kept"]) == (2, 3, 2)
        assert body["rejected"] == {"ui_image": 1} and body["album"] is not None

        started = admin_client_api.post(URL, {"url": site.url("/slow/0.html"), "max_depth": 10}, format="json")
        slow_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while ScrapeJob.objects.get(pk=slow_id).images_kept < 1:
            assert time.monotonic() < deadline, worker.text[-3000:]
            time.sleep(0.1)
        admin_client_api.post(f"{URL}{slow_id}/cancel/")
        slow = wait_for_final_job(ScrapeJob.objects.get(pk=slow_id), worker=worker)

    assert slow.status == "cancelled"
    assert site.hits("/slow/10.html") == 0  # stopped within a page or two of the cancel
    assert not Image.objects.filter(source_url=site.url("/c.jpg")).exists() and slow.album_id is None
    stored = {name for image in Image.objects.all() for name in (image.file.name, image.thumbnail.name)}
    assert set(files_under(media_root)) == stored and len(stored) == 4
    assert files_under(scratch_dir) == []
    assert str(media_root) not in worker.text
