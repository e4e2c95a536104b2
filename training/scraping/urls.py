"""URL handling shared by the crawler and the client: one spelling per URL, http(s) only."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
MAX_URL_LENGTH = 2000  # albums.Image.source_url


def normalise_url(url: str) -> str | None:
    """The URL in the one form used for de-duplication and requests, or None when it is not scrapeable.

    Lower-cased scheme and host, default port and fragment dropped, "/" for an empty path. Refused:
    schemes other than http/https, URLs without a host, with a user name or password (never sent
    anywhere), with a bad port, or longer than MAX_URL_LENGTH.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    normalised = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return normalised if len(normalised) <= MAX_URL_LENGTH else None


def host_of(url: str) -> str:
    """The host name of a normalised URL (no port), as the same-host rule compares it."""
    return (urlsplit(url).hostname or "").lower()


def origin_of(url: str) -> str:
    """scheme://host[:port] of a normalised URL: what one robots.txt covers."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def looks_like_image(url: str) -> bool:
    """Whether a link points at an image file by its path (links to pages are crawled instead)."""
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def file_name_of(url: str) -> str:
    """The last path segment: the image's original_filename (never used as a storage name)."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1][:255]
