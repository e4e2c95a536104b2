"""A whole scrape of a local site with every kind of trouble; each ends as described, the counters prove it."""

import pytest

from albums.models import Album, Image, ImageSource
from labeling.models import Label, LabelSource, LabelType
from tests.assertions import files_under
from tests.training.scraping.helpers import near_copy, photo, run_scrape
from tests.training.scraping.local_site import LocalSite

pytestmark = pytest.mark.django_db

KEPT = ["alpha.jpg", "bravo-large.jpg", "charlie.png", "delta-1600.webp", "echo.jpg", "foxtrot.jpg"]
NEVER_REQUESTED = [
    "/img/icon-home.png",
    "/img/charlie-thumb.jpg",
    "/img/bravo-small.jpg",
    "/img/delta-400.jpg",
    "/img/delta-800.webp",
    "/img/placeholder.gif",
    "/private/secret.jpg",
    "/private/page.html",
    "/gallery/deepest.html",
]


@pytest.fixture
def other_site():
    """A second site, linked from the gallery as http://localhost:<port>/: another host name."""
    server = LocalSite("127.0.0.1")
    server.page("/elsewhere.html", '<img src="/far.jpg">')
    server.file("/far.jpg", photo(70))
    yield server
    server.close()


@pytest.fixture
def gallery(site, other_site):
    site.file("/robots.txt", b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    site.page(
        "/",
        '<img src="/img/alpha.jpg" alt="Alpha" title="Alpha title">'
        '<figure><img src="/img/bravo-small.jpg" srcset="/img/bravo-small.jpg 320w, /img/bravo-large.jpg 1024w">'
        "<figcaption>Bravo caption</figcaption></figure>"
        '<img src="/img/icon-home.png" width="16" height="16">'
        '<img src="/img/banner.jpg">'
        '<img src="/img/broken.jpg"><img src="/img/fake.png"><img src="/img/small.jpg"><img src="/img/missing.jpg">'
        '<img src="/private/secret.jpg">'
        '<a href="/img/charlie.png" title="Charlie link"><img src="/img/charlie-thumb.jpg" width="50"></a>'
        '<a href="/gallery/">Gallery</a> <a href="/slow.html">Slow</a> <a href="/loop-a">Loop</a>'
        '<a href="/private/page.html">Private</a> <a href="/gone.html">Gone</a>'
        f'<a href="http://localhost:{other_site.port}/elsewhere.html">Elsewhere</a>',
    )
    site.page(
        "/gallery/",
        '<picture><source srcset="/img/delta-800.webp 800w, /img/delta-1600.webp 1600w" type="image/webp">'
        '<img src="/img/delta-400.jpg" alt="Delta"></picture>'
        '<img src="/img/placeholder.gif" data-src="/img/echo.jpg" alt="Echo">'
        '<img src="/img/alpha-copy.jpg"><img src="/img/alpha-near.jpg">'
        '<a href="/">Home</a> <a href="deeper.html">Deeper</a>',
    )
    site.page("/gallery/deeper.html", '<img src="/img/foxtrot.jpg"><a href="deepest.html">Deepest</a>')
    site.page("/gallery/deepest.html", '<img src="/img/golf.jpg">')
    site.page("/slow.html", "<p>late</p>", delay=2.5)  # the test config's timeout is 1 s
    site.redirect("/loop-a", "/loop-b")
    site.redirect("/loop-b", "/loop-a")
    site.file("/img/alpha.jpg", photo(1))
    site.file("/img/alpha-copy.jpg", photo(1))
    site.file("/img/alpha-near.jpg", near_copy(1))
    site.file("/img/bravo-small.jpg", photo(2, (80, 60)))
    site.file("/img/bravo-large.jpg", photo(2, (200, 150)))
    site.file("/img/charlie.png", photo(3, fmt="PNG"), content_type="image/png")
    site.file("/img/charlie-thumb.jpg", photo(3, (50, 40)))
    site.file("/img/delta-1600.webp", photo(4, fmt="WEBP"), content_type="image/webp")
    site.file("/img/echo.jpg", photo(5))
    site.file("/img/foxtrot.jpg", photo(6))
    site.file("/img/golf.jpg", photo(7))
    site.file("/img/banner.jpg", photo(8, (800, 80)))
    site.file("/img/broken.jpg", photo(9)[:600])
    site.file("/img/fake.png", b"<!doctype html><html><body>Not found</body></html>", content_type="image/png")
    site.file("/img/small.jpg", photo(10, (40, 40)))
    site.file("/img/icon-home.png", photo(11, (16, 16), fmt="PNG"), content_type="image/png")
    site.file("/private/secret.jpg", photo(12))
    site.page("/private/page.html", '<img src="/img/golf.jpg">')
    return site


def test_every_kind_of_trouble_ends_as_described(gallery, other_site, admin_user):
    job = run_scrape(gallery.url("/"), user=admin_user)

    assert job.status == "succeeded", job.error_message
    assert (job.pages_fetched, job.pages_failed) == (3, 3)  # /, /gallery/, deeper | slow, loop, gone
    assert (job.images_discovered, job.images_downloaded, job.images_kept) == (15, 12, 6)
    assert job.rejected == {
        "aspect_ratio": 1,  # the 10:1 banner
        "corrupt_image": 1,
        "duplicate_exact": 1,
        "duplicate_perceptual": 1,
        "http_404": 2,  # an image and a page
        "not_an_image": 1,  # HTML served as image/png
        "other_host": 1,
        "redirect_loop": 1,
        "robots": 2,  # an image and a page under /private/
        "timeout": 1,
        "too_small": 1,
        "ui_image": 1,
    }
    for path in NEVER_REQUESTED:
        assert gallery.hits(path) == 0, path
    assert other_site.requests == []
    assert gallery.hits("/robots.txt") == 1


def test_kept_images_form_a_private_album_in_crawl_order_with_their_texts(gallery, admin_user, media_root):
    job = run_scrape(gallery.url("/"), user=admin_user)

    album = Album.objects.get(pk=job.album_id)
    assert (album.name, album.is_public, album.album_type, album.source_id) == (job.name, False, "scraped", job.pk)
    images = [link.image for link in album.album_images.select_related("image").order_by("sort_order")]
    assert [image.original_filename for image in images] == KEPT
    assert [image.source_url for image in images] == [gallery.url(f"/img/{name}") for name in KEPT]
    assert all(i.source == ImageSource.SCRAPED and not i.is_public and i.created_by == admin_user for i in images)
    assert [image.format for image in images] == ["JPEG", "JPEG", "PNG", "WEBP", "JPEG", "JPEG"]
    assert all(len(image.phash) == 16 for image in images)
    labels = {
        (label.image.original_filename, label.label_type, label.text)
        for label in Label.objects.filter(source=LabelSource.HTML_METADATA).select_related("image")
    }
    assert labels == {
        ("alpha.jpg", LabelType.ALT_TEXT, "Alpha"),
        ("alpha.jpg", LabelType.TITLE, "Alpha title"),
        ("bravo-large.jpg", LabelType.HTML_CAPTION, "Bravo caption"),
        ("charlie.png", LabelType.TITLE, "Charlie link"),
        ("delta-1600.webp", LabelType.ALT_TEXT, "Delta"),
        ("echo.jpg", LabelType.ALT_TEXT, "Echo"),
    }
    stored = {image.file.name for image in images} | {image.thumbnail.name for image in images}
    assert set(files_under(media_root)) == stored  # rejected downloads left no file


def test_scratch_is_removed_after_a_scrape(gallery, scratch_dir):
    run_scrape(gallery.url("/"))
    assert list((scratch_dir / "scrapes").glob("job-*")) == [] and files_under(scratch_dir) == []


def test_robots_txt_can_be_ignored_by_override(site):
    site.file("/robots.txt", b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    site.page("/", '<img src="/private/a.jpg"><a href="/private/more.html">more</a>')
    site.page("/private/more.html", '<img src="/private/b.jpg">')
    site.file("/private/a.jpg", photo(20))
    site.file("/private/b.jpg", photo(21))

    honoured = run_scrape(site.url("/"))
    assert (honoured.images_kept, honoured.rejected) == (0, {"robots": 2})

    ignored = run_scrape(site.url("/"), respect_robots_txt=False)
    assert (ignored.images_kept, ignored.pages_fetched, ignored.rejected) == (2, 2, {})


def test_robots_rules_for_this_user_agent_apply(site):
    site.file(
        "/robots.txt",
        b"User-agent: ImagineerBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
        content_type="text/plain",
    )
    site.page("/", '<img src="/a.jpg">')
    job = run_scrape(site.url("/"))
    assert job.status == "failed" and "robots" in job.error_message
    assert site.hits("/") == 0


def test_other_hosts_are_followed_when_same_host_only_is_off(gallery, other_site, settings):
    settings.IMAGINEER_SCRAPE_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    job = run_scrape(gallery.url("/"), same_host_only=False, max_depth=1)
    assert other_site.hits("/elsewhere.html") == 1 and other_site.hits("/far.jpg") == 1
    assert "other_host" not in job.rejected
    assert Image.objects.filter(source_url=f"http://localhost:{other_site.port}/far.jpg").exists()


def test_max_images_stops_the_crawl_without_extra_downloads(site):
    site.page("/", "".join(f'<img src="/{n}.jpg">' for n in range(6)) + '<a href="/next.html">next</a>')
    site.page("/next.html", '<img src="/later.jpg">')
    for n in range(6):
        site.file(f"/{n}.jpg", photo(30 + n))
    job = run_scrape(site.url("/"), max_images=2)
    assert (job.images_kept, job.images_downloaded, job.images_discovered) == (2, 2, 6)
    assert sorted(p for p in site.requests if p.endswith(".jpg")) == ["/0.jpg", "/1.jpg"]  # fetched in parallel
    assert site.hits("/next.html") == 0


@pytest.mark.parametrize(("max_depth", "pages"), [(0, ["/"]), (1, ["/", "/one.html"])])
def test_max_depth_bounds_the_links_followed(site, max_depth, pages):
    site.page("/", '<a href="/one.html">1</a>')
    site.page("/one.html", '<a href="/two.html">2</a>')
    site.page("/two.html", "<p>deep</p>")
    job = run_scrape(site.url("/"), max_depth=max_depth)
    assert [p for p in site.requests if p.endswith((".html", "/"))] == pages
    assert job.pages_fetched == len(pages)


def test_a_download_that_fails_once_is_retried(site):
    site.page("/", '<img src="/flaky.jpg">')
    site.file("/flaky.jpg", photo(40), fail_first=1)
    job = run_scrape(site.url("/"))
    assert (job.images_kept, site.hits("/flaky.jpg")) == (1, 2)


def test_a_file_over_the_size_cap_is_rejected_unread(site, media_root):
    site.page("/", '<img src="/huge.png">')
    site.file("/huge.png", photo(41, (300, 300), fmt="PNG"), content_type="image/png")
    job = run_scrape(site.url("/"), max_image_bytes=2048)
    assert (job.images_downloaded, job.rejected) == (0, {"too_large": 1})
    assert files_under(media_root) == []


def test_a_second_scrape_of_the_same_site_keeps_nothing_new(site):
    site.page("/", '<img src="/a.jpg"><img src="/b.jpg">')
    site.file("/a.jpg", photo(50))
    site.file("/b.jpg", photo(51))
    first = run_scrape(site.url("/"))
    second = run_scrape(site.url("/"))
    assert first.images_kept == 2
    assert (second.images_kept, second.album_id, second.rejected) == (0, None, {"duplicate_exact": 2})
    assert Image.objects.count() == 2 and Album.objects.count() == 1


def test_near_copies_of_stored_images_are_dropped(site):
    site.page("/", '<img src="/a.jpg">')
    site.page("/copies.html", '<img src="/a-resaved.jpg">')
    site.file("/a.jpg", photo(52))
    site.file("/a-resaved.jpg", near_copy(52))
    run_scrape(site.url("/"))
    again = run_scrape(site.url("/copies.html"))
    assert (again.images_kept, again.rejected) == (0, {"duplicate_perceptual": 1})


def test_a_start_page_that_does_not_load_fails_the_job_with_the_reason(site):
    job = run_scrape(site.url("/nothing-here"))
    assert job.status == "failed"
    assert "start page could not be scraped (http_404)" in job.error_message
    assert (job.pages_failed, job.rejected) == (1, {"http_404": 1})
