"""Cancel and failure mid-crawl: the job ends, and nothing it stored or downloaded stays."""

from datetime import timedelta

import pytest
from django.db import connection

from albums.models import Album, Image
from imagineer.core import jobs
from tests.assertions import files_under
from tests.training.scraping.helpers import photo, run_scrape
from training.models import ScrapeJob

# The site's server thread asks for the cancel through its own database connection, so the job
# row must be committed for it to see: a transactional test.
pytestmark = pytest.mark.django_db(transaction=True)


def cancel_every_running_scrape() -> None:
    for job in ScrapeJob.objects.filter(status="running"):
        jobs.cancel_job(job)
    connection.close()  # this is the server's thread; its connection goes with the request


def test_cancel_mid_crawl_removes_what_the_job_had_stored(site, media_root, scratch_dir):
    site.page("/", '<img src="/a.jpg"><img src="/b.jpg"><a href="/second.html">next</a>')
    site.page(
        "/second.html", '<img src="/c.jpg"><a href="/third.html">next</a>', on_request=cancel_every_running_scrape
    )
    site.page("/third.html", '<img src="/d.jpg">')
    for n, name in enumerate("abcd"):
        site.file(f"/{name}.jpg", photo(80 + n))

    job = run_scrape(site.url("/"))

    assert job.status == "cancelled"
    assert site.hits("/a.jpg") == 1 and site.hits("/third.html") == 0  # it had kept images, then stopped
    assert (job.images_kept, job.album_id) == (0, None)
    assert Image.objects.count() == 0 and Album.objects.count() == 0
    assert files_under(media_root) == [] and files_under(scratch_dir) == []


def reap_every_scrape() -> None:
    jobs.reap_stale_jobs(timedelta(microseconds=1))  # as if the worker's heartbeat had stopped
    connection.close()


def test_a_job_lost_mid_crawl_leaves_no_album_and_no_files(site, media_root, scratch_dir):
    site.page("/", '<img src="/a.jpg"><a href="/next.html">next</a>')
    site.page("/next.html", '<img src="/b.jpg">', on_request=reap_every_scrape)
    site.file("/a.jpg", photo(90))
    site.file("/b.jpg", photo(91))

    job = run_scrape(site.url("/"))

    assert job.status == "failed" and "stopped responding" in job.error_message
    assert site.hits("/a.jpg") == 1 and site.hits("/b.jpg") == 0
    assert Image.objects.count() == 0 and Album.objects.count() == 0
    assert files_under(media_root) == [] and files_under(scratch_dir) == []
