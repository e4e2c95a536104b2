"""The private-network guard on real requests: traffic only inside 127.0.0.0/8.

127.0.0.1 is allow-listed for the tests; 127.0.0.2 (any loopback address answers on Linux) is not,
and a recording server bound there proves that nothing reached it.
"""

import socket

import pytest

from tests.training.scraping.helpers import photo, run_scrape
from tests.training.scraping.local_site import LocalSite

pytestmark = pytest.mark.django_db


def test_a_start_url_on_a_refused_address_fails_before_any_request(private_recorder):
    private_recorder.page("/", "<p>internal</p>")
    job = run_scrape(private_recorder.url("/"))
    assert job.status == "failed"
    assert "127.0.0.2, a loopback address" in job.error_message
    assert job.rejected == {"blocked_address": 1}
    assert private_recorder.requests == []


def test_a_host_name_is_judged_by_what_it_resolves_to(site):
    site.page("/", "<p>hello</p>")
    job = run_scrape(f"http://localhost:{site.port}/")  # localhost is not listed; 127.0.0.1 is
    assert job.status == "failed" and "a loopback address" in job.error_message
    assert site.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed(site, private_recorder):
    site.page("/", '<img src="/img/moved.jpg"><a href="/moved.html">moved</a>')
    site.redirect("/img/moved.jpg", private_recorder.url("/metadata.jpg"))
    site.redirect("/moved.html", private_recorder.url("/admin/"))
    job = run_scrape(site.url("/"))
    assert job.status == "succeeded"
    assert job.rejected == {"blocked_address": 2}
    assert (site.hits("/img/moved.jpg"), site.hits("/moved.html")) == (1, 1)
    assert private_recorder.requests == []


def test_allow_listed_hosts_are_let_through(site, private_recorder, settings):
    settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    site.page("/", f'<img src="{private_recorder.url("/inside.jpg")}">')
    private_recorder.file("/inside.jpg", photo(60))
    job = run_scrape(site.url("/"))
    assert (job.images_kept, job.rejected) == (1, {})
    assert private_recorder.requests == ["/robots.txt", "/inside.jpg"]


@pytest.fixture
def rebound_site(site):
    """A server on 127.0.0.2 at the same port as `site`: where a rebound lookup would lead."""
    server = LocalSite("127.0.0.2", port=site.port)
    yield server
    server.close()


def test_the_connection_goes_to_the_address_that_was_checked(site, rebound_site, settings, monkeypatch):
    """DNS rebinding: a second lookup would answer 127.0.0.2; the request must use the first answer."""
    settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["127.0.0.1", "rebind.test"]
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = next(answers, "127.0.0.2")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    site.page("/", "<p>the real page</p>")
    rebound_site.page("/", "<p>rebound</p>")
    job = run_scrape(f"http://rebind.test:{site.port}/", respect_robots_txt=False, max_depth=0)
    assert job.status == "succeeded" and job.pages_fetched == 1
    assert site.requests == ["/"] and rebound_site.requests == []
