"""What the parser takes from a page: the largest source of each image, its texts, the UI-image rule."""

from training.scraping.extract import extract_page, largest_in_srcset, parse_srcset

PAGE = "http://site.test/section/page.html"


def extract(body: str, url: str = PAGE):
    return extract_page(f"<html><body>{body}</body></html>".encode(), url)


def test_srcset_split_keeps_commas_inside_urls():
    assert parse_srcset("a,b.jpg 1x, /c.jpg 2x,d.jpg") == [("a,b.jpg", "1x"), ("/c.jpg", "2x"), ("d.jpg", "")]


def test_largest_prefers_width_descriptors_then_density():
    assert largest_in_srcset("s.jpg 320w, l.jpg 1024w, m.jpg 640w") == "l.jpg"
    assert largest_in_srcset("one.jpg, two.jpg 2x, onehalf.jpg 1.5x") == "two.jpg"
    assert largest_in_srcset("x.jpg 3x, w.jpg 100w") == "w.jpg"


def test_img_takes_srcset_over_lazy_source_over_src():
    content = extract(
        '<img src="/s.jpg" srcset="/m.jpg 500w, /l.jpg 900w">'
        '<img src="/placeholder.gif" data-src="/lazy.jpg">'
        '<img src="plain.jpg">'
    )
    assert [c.url for c in content.images] == [
        "http://site.test/l.jpg",
        "http://site.test/lazy.jpg",
        "http://site.test/section/plain.jpg",
    ]


def test_picture_is_one_candidate_its_largest_source():
    content = extract(
        '<picture><source srcset="/d-800.webp 800w, /d-1600.webp 1600w" type="image/webp">'
        '<source srcset="/d-1200.jpg 1200w"><img src="/d-400.jpg" alt="Delta"></picture>'
    )
    assert [(c.url, c.alt) for c in content.images] == [("http://site.test/d-1600.webp", "Delta")]


def test_link_to_an_image_wins_over_the_thumbnail_inside_it():
    content = extract('<a href="/full.png" title="Full size"><img src="/thumb.jpg" width="40" alt="A cat"></a>')
    assert [(c.url, c.title, c.alt, c.ui_reason) for c in content.images] == [
        ("http://site.test/full.png", "Full size", "A cat", "")
    ]


def test_a_linked_image_is_ui_by_its_thumbnail_names_not_its_size():
    content = extract(
        '<a href="/brand.png"><img src="/t.png" class="logo"></a><a href="/p.jpg"><img src="/t.jpg" width="9"></a>'
    )
    assert [c.ui_reason for c in content.images] == ["class names a logo", ""]


def test_figcaption_alt_and_title_are_kept_whitespace_collapsed():
    content = extract(
        '<figure><img src="/p.jpg" alt=" A  red\nkite " title="Kite"><figcaption> On the\n hill </figcaption></figure>'
    )
    (candidate,) = content.images
    assert (candidate.alt, candidate.title, candidate.caption) == ("A red kite", "Kite", "On the hill")


def test_links_are_resolved_against_base_href_and_fragments_dropped():
    content = extract('<base href="http://other.test/root/"><a href="next.html#top">n</a><a href="mailto:x@y.z">m</a>')
    assert content.links == ["http://other.test/root/next.html"]


def test_ui_images_are_marked_with_the_reason():
    content = extract(
        '<img src="/icons/home.png">'
        '<img src="/photo.jpg" width="16" height="16">'
        '<img src="/a.jpg" class="site-logo">'
        '<img src="/b.jpg" alt="Avatar of the author">'
        '<img src="/vector.svg">'
        '<img src="/favicon.ico">'
        '<img src="data:image/png;base64,iVBORw0KGgo=">'
        '<img src="/blog/catalog/photo.jpg" width="800">'
    )
    reasons = [c.ui_reason for c in content.images]
    assert reasons[:7] == [
        "URL names a icon",
        "declared width 16 < 64",
        "class names a logo",
        "alt names a avatar",
        "SVG or icon file",
        "SVG or icon file",
        "inline data URI",
    ]
    assert reasons[7] == ""  # "blog" and "catalog" are not "logo"
