"""One image: download to scratch, decide what it is with Pillow, measure it, hash it.

Runs in the job's download threads (bounded by `concurrency`); touches no database. What the
file is comes from decoding it (albums.image_files.inspect_image), never from its URL or its
Content-Type. A rejected file is deleted at once, so scratch holds only files still in play.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import imagehash
from PIL import Image as PILImage

from albums.image_files import ImageFacts, ImageTooLarge, UnsupportedImage, inspect_image, render_thumbnail
from imagineer.core.runtime_config import ScrapingConfig
from training.scraping.client import FetchFailed, SiteClient
from training.scraping.extract import ImageCandidate


@dataclass(frozen=True)
class DownloadResult:
    candidate: ImageCandidate
    fetched: bool  # the bytes arrived (they may still have been rejected)
    reason: str = ""  # why it was rejected; "" when it passed every check
    path: Path | None = None
    facts: ImageFacts | None = None  # with the thumbnail
    phash: int = 0

    @property
    def passed(self) -> bool:
        return not self.reason


def _content_reason(exc: Exception) -> str:
    if isinstance(exc, ImageTooLarge):
        return "too_large"
    if exc.code == "corrupt_image":
        return "corrupt_image"
    if "format" in exc.details:
        return "unsupported_format"  # an image, but not JPEG/PNG/WebP/GIF
    return "not_an_image"


def perceptual_hash(path: Path) -> int:
    """The 64-bit DCT hash (imagehash.phash) of the first frame, as an integer."""
    with PILImage.open(path) as img:
        return int(str(imagehash.phash(img)), 16)


def download_image(client: SiteClient, candidate: ImageCandidate, dest: Path, config: ScrapingConfig) -> DownloadResult:
    """Fetch and check one candidate; the file at `dest` stays only when the result passed."""
    try:
        client.fetch(candidate.url, max_bytes=config.max_image_bytes, dest=dest, retry=True)
    except FetchFailed as exc:
        return DownloadResult(candidate, fetched=False, reason=exc.reason)
    reason, facts, phash = "", None, 0
    try:
        with dest.open("rb") as handle:
            facts = inspect_image(handle, name="the image")
        short, long = sorted((facts.width, facts.height))
        if facts.width < config.min_width or facts.height < config.min_height:
            reason = "too_small"
        elif long / short > config.max_aspect_ratio:
            reason = "aspect_ratio"
        else:
            with dest.open("rb") as handle:
                facts = dataclasses.replace(facts, thumbnail=render_thumbnail(handle))
            phash = perceptual_hash(dest)
    except (UnsupportedImage, ImageTooLarge) as exc:
        reason = _content_reason(exc)
    except (OSError, ValueError):
        reason = "corrupt_image"  # decoded once, but not again for the thumbnail or the hash
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if reason:
        dest.unlink(missing_ok=True)
        return DownloadResult(candidate, fetched=True, reason=reason)
    return DownloadResult(candidate, fetched=True, path=dest, facts=facts, phash=phash)
