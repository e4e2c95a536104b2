"""What the scraping suites (and the multi-machine deploy test) share: photo-like images, the small
scraping config they run under, and a scrape run in this process."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

from imagineer.core import jobs
from training.models import ScrapeJob
from training.services import scrapes


def photo(seed: int, size: tuple[int, int] = (160, 120), fmt: str = "JPEG") -> bytes:
    """A photo-like image (smooth random blobs): distinct seeds give perceptual hashes ~30 bits apart."""
    rng = np.random.default_rng(seed)
    blobs = PILImage.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, PILImage.BICUBIC)
    out = io.BytesIO()
    blobs.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def near_copy(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """The same photo resized and re-encoded harder: other bytes, nearly the same perceptual hash."""
    original = PILImage.open(io.BytesIO(photo(seed, size)))
    out = io.BytesIO()
    original.resize((size[0] - 8, size[1] - 6)).save(out, "JPEG", quality=60)
    return out.getvalue()


# Small and fast: 1 s timeouts (the slow page sleeps past it), short back-off, 64 px minimum.
TEST_SCRAPING_CONFIG = {
    "max_images": 50,
    "max_depth": 2,
    "max_pages": 50,
    "request_timeout_seconds": 1.0,
    "retries": 1,
    "retry_backoff_seconds": 0.05,
    "concurrency": 4,
    "min_width": 64,
    "min_height": 64,
    "max_aspect_ratio": 4.0,
    "phash_threshold": 6,
}


def run_scrape(url: str, *, user=None, **overrides) -> ScrapeJob:
    """Start a job through the service and run its body here, as a worker would."""
    job = scrapes.start_scrape_job(url=url, user=user, overrides=overrides)
    jobs.run_job(ScrapeJob, job.pk, scrapes.run_scrape_job)
    job.refresh_from_db()
    return job
