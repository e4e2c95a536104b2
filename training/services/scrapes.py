"""Scrape jobs: start one (config resolved and validated), and the job body that runs it.

The run, page by page in crawl order: fetch and parse the page (training/scraping/crawl.py), then
download its new image candidates in batches of `concurrency` (scraping/download.py, threads), drop
duplicates (scraping/dedupe.py) and store the rest (scraping/store.py), so the album is in crawl
order and max_images is never overshot.
Progress and counters are written together after every page and every batch; that write is also
where an operator's cancel is noticed (imagineer.core.jobs.record_progress), so a cancel takes
effect within one page or one batch of downloads.
"""

from __future__ import annotations

import shutil
import string
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from pydantic import ValidationError

from imagineer.core import jobs
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import ScrapingConfig, get_runtime_config
from training.models import ScrapeJob
from training.scraping.client import FetchFailed, SiteClient
from training.scraping.crawl import Crawler, ScrapeTally
from training.scraping.dedupe import DuplicateIndex
from training.scraping.download import DownloadResult, download_image
from training.scraping.extract import ImageCandidate
from training.scraping.robots import RobotsRules
from training.scraping.store import ScrapeStore
from training.scraping.urls import MAX_URL_LENGTH, host_of, normalise_url

# Named as before the module moved into services/: LOG_LEVELS entries and log searches know it so.
logger = get_logger("training.scraping.services")
PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


class ScrapeSettingsInvalid(ImagineerError):
    """`details["fields"]` maps each bad key ("url", "max_depth", ...) to what is wrong with it."""

    code = "invalid_scrape_settings"


def resolve_scrape_config(overrides: Mapping[str, Any]) -> ScrapingConfig:
    """The runtime config's scraping section with the job's overrides, validated with the section's own bounds."""
    defaults = get_runtime_config().scraping
    try:
        config = ScrapingConfig.model_validate({**defaults.model_dump(), **overrides})
    except ValidationError as exc:
        accepted = ", ".join(ScrapingConfig.model_fields)
        fields = {
            ".".join(str(p) for p in error["loc"]) or "overrides": (
                f"Unknown setting; accepted: {accepted}" if error["type"] == "extra_forbidden" else error["msg"]
            )
            for error in exc.errors()
        }
        key, reason = next(iter(fields.items()))
        raise ScrapeSettingsInvalid(f"{key}: {reason}.", details={"fields": fields}) from None
    if not set(config.user_agent) <= PRINTABLE:
        raise ScrapeSettingsInvalid(
            "user_agent: must be one line of printable ASCII characters.",
            details={"fields": {"user_agent": "must be one line of printable ASCII characters"}},
        )
    return config


def check_start_url(url: str) -> str:
    """The URL in normalised form; ScrapeSettingsInvalid naming `url` when it cannot be scraped."""
    normalised = normalise_url(url)
    if normalised is None:
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts = None
        if parts is None:
            reason = "is not a valid URL (check the host and port)"
        elif parts.scheme.lower() not in ("http", "https"):
            reason = f"must start with http:// or https:// (not {parts.scheme or 'a bare host'})"
        elif not parts.hostname:
            reason = "has no host name"
        elif parts.username is not None or parts.password is not None:
            reason = "must not carry a user name or password"
        else:
            reason = f"is longer than {MAX_URL_LENGTH} characters"
        raise ScrapeSettingsInvalid(f"url: {reason}.", details={"fields": {"url": reason}})
    return normalised


def start_scrape_job(*, url: str, user=None, name: str = "", overrides: Mapping[str, Any] | None = None) -> ScrapeJob:
    """Validate, record and queue a scrape job (queue `scraping`)."""
    overrides = dict(overrides or {})
    start_url = check_start_url(url)
    config = resolve_scrape_config(overrides)
    with transaction.atomic():
        job = ScrapeJob.objects.create(
            name=(name.strip() or f"Scrape of {host_of(start_url)}")[:200],
            start_url=start_url,
            config=config.model_dump(mode="json"),
            overrides=overrides,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        jobs.enqueue_job(job)
    logger.info("scrape.queued", scrape_job_id=job.pk, host=host_of(start_url))
    return job


def scratch_dir_for(job: ScrapeJob) -> Path:
    return Path(settings.IMAGINEER_SCRATCH_DIR) / "scrapes" / f"job-{job.pk}-{job.attempts}"


def run_scrape_job(job: ScrapeJob) -> None:
    """Job body: crawl, download, check, deduplicate, store. Unless it succeeds, nothing it stored stays.

    The job's scratch folder (downloads in flight) is removed whatever the outcome.
    """
    config = ScrapingConfig.model_validate(job.config)
    scratch = scratch_dir_for(job)
    scratch.mkdir(parents=True, exist_ok=True)
    client = SiteClient(config)
    store = ScrapeStore(job)
    try:
        ScrapeRun(job, config, client, store, scratch).run()
    except BaseException:
        if store.remove_all():
            jobs.update_job(job, images_kept=0)
        raise
    finally:
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)


class ScrapeRun:
    def __init__(self, job: ScrapeJob, config: ScrapingConfig, client: SiteClient, store: ScrapeStore, scratch: Path):
        self.job = job
        self.config = config
        self.client = client
        self.store = store
        self.scratch = scratch
        self.tally = ScrapeTally()
        self.robots = RobotsRules(client, enabled=config.respect_robots_txt)
        self.crawler = Crawler(job.start_url, config, client, self.robots, self.tally)
        self.duplicates = DuplicateIndex(config.phash_threshold)
        self.seen_images: set[str] = set()
        self.pending: deque[ImageCandidate] = deque()
        self.downloads = 0  # scratch file names: a counter, never anything from the URL

    @property
    def full(self) -> bool:
        return self.tally.kept >= self.config.max_images

    def run(self) -> None:
        self.report("Fetching the start page")
        try:
            with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="scrape") as pool:
                for page in self.crawler.pages():
                    self.collect(page.images)
                    self.report(f"Page {page.url[:120]}")
                    while self.pending and not self.full:
                        self.download_batch(pool)
                        self.report(f"Images of {page.url[:120]}")
                    if self.full:
                        break
        finally:
            self.save_counters()
        done = self.crawler.pages_requested
        jobs.record_progress(self.job, done, done, self.summary())

    def collect(self, candidates: list[ImageCandidate]) -> None:
        for candidate in candidates:
            if candidate.url in self.seen_images:
                continue
            self.seen_images.add(candidate.url)
            self.tally.discovered += 1
            if candidate.ui_reason:
                self.tally.reject("ui_image")
            else:
                self.pending.append(candidate)

    def download_batch(self, pool: ThreadPoolExecutor) -> None:
        """Up to `concurrency` downloads at once, never more than the images still wanted."""
        wanted = min(self.config.concurrency, self.config.max_images - self.tally.kept)
        batch: list[tuple[ImageCandidate, Path]] = []
        while self.pending and len(batch) < wanted:
            candidate = self.pending.popleft()
            if self.allowed_by_robots(candidate.url):
                self.downloads += 1
                batch.append((candidate, self.scratch / f"{self.downloads:07d}.download"))
        futures = [pool.submit(download_image, self.client, c, dest, self.config) for c, dest in batch]
        results = [future.result() for future in futures]  # all finish before any is stored or dropped
        try:
            for result in results:
                self.settle(result)
        finally:
            for result in results:
                if result.path is not None:
                    result.path.unlink(missing_ok=True)

    def allowed_by_robots(self, url: str) -> bool:
        try:
            allowed = self.robots.allows(url)
        except FetchFailed as exc:
            self.tally.reject(exc.reason)
            return False
        if not allowed:
            self.tally.reject("robots")
        return allowed

    def settle(self, result: DownloadResult) -> None:
        """Count, and keep or drop, one finished download (in crawl order)."""
        self.tally.downloaded += result.fetched
        if not result.passed:
            self.tally.reject(result.reason)
            return
        reason = self.duplicates.duplicate_reason(result.facts.sha256, result.phash)
        if not reason and not self.store.keep(result):
            reason = "duplicate_exact"
        if reason:
            self.tally.reject(reason)
            return
        self.duplicates.add(result.facts.sha256, result.phash)
        self.tally.kept += 1

    def summary(self) -> str:
        t = self.tally
        return (
            f"{t.pages_fetched} pages, {t.discovered} images found, {t.downloaded} downloaded, {t.kept} kept"
            f" (limit {self.config.max_images})"
        )

    def report(self, doing: str) -> None:
        done, known = self.crawler.pages_requested, max(self.crawler.pages_known, 1)
        message = f"{doing} · {self.summary()}"
        jobs.record_progress(self.job, done, known, message, extra_fields=self.counters())

    def save_counters(self) -> None:
        jobs.update_job(self.job, **self.counters())

    def counters(self) -> dict[str, Any]:
        """The job's counter columns as the tally has them now."""
        t = self.tally
        return {
            "pages_fetched": t.pages_fetched,
            "pages_failed": t.pages_failed,
            "images_discovered": t.discovered,
            "images_downloaded": t.downloaded,
            "images_kept": t.kept,
            "rejected": dict(sorted(t.rejected.items())),
        }
