"""What a page offers: image candidates (with their alt, title and caption) and links to follow.

Sources, in document order:
- `<a href>` whose path ends in an image extension: the linked file is the candidate (a gallery's
  thumbnail links to the full image; the `<img>` inside the link is not taken separately, so the
  thumbnail never wins the near-duplicate race against the full image);
- `<picture>`: the largest candidate among its `<source srcset>` and its `<img>`;
- `<img>`: the largest of `srcset`, else of `data-srcset`, else `data-src` / `data-lazy-src`
  (lazy loading puts a placeholder in `src`), else `src`.
"Largest" is the highest `w` descriptor when there are any, else the highest `x` (none means 1x).

The UI-image rule (docs/SCRAPING.md) marks candidates that are skipped without a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from training.scraping.urls import looks_like_image, normalise_url

# A declared width or height below this (in CSS pixels) is an icon, bullet or spacer.
UI_MAX_DECLARED_SIDE = 64
# Words that name page furniture, matched at the start of a word in class, id, alt, title or the URL path.
UI_WORDS = re.compile(r"(?<![a-z])(?:icon|logo|sprite|avatar|badge|button)|favicon", re.IGNORECASE)
UI_EXTENSIONS = (".svg", ".svgz", ".ico")
LAZY_SOURCE_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original")


@dataclass(frozen=True)
class ImageCandidate:
    url: str
    alt: str = ""
    title: str = ""
    caption: str = ""
    ui_reason: str = ""  # set: skipped as a UI image, never requested


@dataclass
class PageContent:
    images: list[ImageCandidate] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def parse_srcset(value: str) -> list[tuple[str, str]]:
    """(url, descriptor) pairs of a srcset, as the HTML spec splits them (commas may sit inside URLs)."""
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(value)
    while pos < end:
        while pos < end and (value[pos].isspace() or value[pos] == ","):
            pos += 1
        start = pos
        while pos < end and not value[pos].isspace():
            pos += 1
        url, descriptor = value[start:pos], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            while pos < end and value[pos] != ",":
                pos += 1
            descriptor = value[start:pos].strip()
        if url:
            pairs.append((url, descriptor))
    return pairs


def _size_of(descriptor: str) -> tuple[int, float]:
    """Sort key of a descriptor: width descriptors outrank density ones; larger wins."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([wx])", descriptor.strip().lower())
    if match is None:
        return (0, 1.0)
    number, unit = float(match.group(1)), match.group(2)
    return (1, number) if unit == "w" else (0, number)


def largest_in_srcset(*srcsets: str) -> str:
    """The largest candidate URL across srcsets ("" when they are all empty); the first of equals wins."""
    best, best_key = "", (-1, 0.0)
    for srcset in srcsets:
        for url, descriptor in parse_srcset(srcset or ""):
            key = _size_of(descriptor)
            if key > best_key:
                best, best_key = url, key
    return best


def _text(value) -> str:
    if isinstance(value, list):  # class is multi-valued
        value = " ".join(value)
    return " ".join(str(value or "").split())


def _declared_side(value) -> float | None:
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", str(value or ""))
    return float(match.group(1)) if match else None


def ui_image_reason(url: str, *tags: Tag, declared_size_counts: bool = True) -> str:
    """Why this candidate is page furniture rather than content ("" when it is content).

    `url` is normalised (http/https); data: URIs are marked by the caller before they get here.
    """
    path = urlsplit(url).path.lower()
    if path.endswith(UI_EXTENSIONS):
        return "SVG or icon file"
    for tag in tags:
        if declared_size_counts:
            for name in ("width", "height"):
                side = _declared_side(tag.get(name))
                if side is not None and side < UI_MAX_DECLARED_SIDE:
                    return f"declared {name} {side:g} < {UI_MAX_DECLARED_SIDE}"
        for name in ("class", "id", "alt", "title"):
            if match := UI_WORDS.search(_text(tag.get(name))):
                return f"{name} names a {match.group(0).lower()}"
    if match := UI_WORDS.search(path):
        return f"URL names a {match.group(0).lower()}"
    return ""


def _caption_of(tag: Tag) -> str:
    figure = tag.find_parent("figure")
    caption = figure.find("figcaption") if figure is not None else None
    return _text(caption.get_text(" ")) if caption is not None else ""


def _source_of_img(img: Tag) -> str:
    best = largest_in_srcset(_text(img.get("srcset")))
    best = best or largest_in_srcset(_text(img.get("data-srcset")))
    for name in LAZY_SOURCE_ATTRIBUTES:
        best = best or _text(img.get(name))
    return best or _text(img.get("src"))


def extract_page(html: bytes, page_url: str, *, charset: str | None = None) -> PageContent:
    """Candidates and links of one HTML page, resolved against its URL (or its `<base href>`)."""
    soup = BeautifulSoup(html, "lxml", from_encoding=charset)
    base_tag = soup.find("base", href=True)
    base = urljoin(page_url, _text(base_tag["href"])) if base_tag is not None else page_url
    content = PageContent()
    taken: set[int] = set()  # ids of <img>/<picture> tags already covered by a link or a picture

    def add(raw_url: str, *tags: Tag, alt: str, title: str, caption: str, declared_size_counts: bool) -> None:
        raw_url = raw_url.strip()
        if raw_url.startswith("data:"):
            content.images.append(ImageCandidate(url=raw_url[:80], ui_reason="inline data URI"))
            return
        url = normalise_url(urljoin(base, raw_url)) if raw_url else None
        if url is None:
            return
        reason = ui_image_reason(url, *tags, declared_size_counts=declared_size_counts)
        content.images.append(ImageCandidate(url=url, alt=alt, title=title, caption=caption, ui_reason=reason))

    for tag in soup.find_all(["a", "picture", "img"]):
        if id(tag) in taken:
            continue
        if tag.name == "a":
            href = _text(tag.get("href"))
            target = normalise_url(urljoin(base, href)) if href else None
            if target is None:
                continue
            if not looks_like_image(target):
                content.links.append(target)
                continue
            inner = tag.find("img")
            taken.update(id(t) for t in tag.find_all(["img", "picture"]))
            alt = _text(inner.get("alt")) if inner is not None else ""
            title = _text(tag.get("title")) or (_text(inner.get("title")) if inner is not None else "")
            # The thumbnail's names count; its declared size says nothing about the linked file.
            tags = (tag, inner) if inner is not None else (tag,)
            add(href, *tags, alt=alt, title=title, caption=_caption_of(tag), declared_size_counts=False)
        elif tag.name == "picture":
            img = tag.find("img")
            taken.update(id(t) for t in tag.find_all("img"))
            sources = [_text(source.get("srcset")) for source in tag.find_all("source")]
            url = largest_in_srcset(*sources, _text(img.get("srcset")) if img is not None else "")
            url = url or (_source_of_img(img) if img is not None else "")
            if url:
                attrs = (img,) if img is not None else ()
                alt = _text(img.get("alt")) if img is not None else ""
                title = _text(img.get("title")) if img is not None else ""
                add(url, *attrs, alt=alt, title=title, caption=_caption_of(tag), declared_size_counts=True)
        else:
            url = _source_of_img(tag)
            if url:
                add(
                    url,
                    tag,
                    alt=_text(tag.get("alt")),
                    title=_text(tag.get("title")),
                    caption=_caption_of(tag),
                    declared_size_counts=True,
                )
    return content
