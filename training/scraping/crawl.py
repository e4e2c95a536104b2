"""The crawl: pages breadth first from the start URL, within depth, page and host limits.

Depth 0 is the start page; links found on a page at depth d are followed when d < max_depth. The
"site host" is the start page's host after its redirects (example.com → www.example.com is
still the site). With same_host_only, links to pages on other hosts are not followed (tallied
`other_host`, once per URL); images are downloaded from any host, since sites serve them from
CDNs — every request still passes the guard and that host's robots.txt.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import ScrapingConfig
from training.scraping.client import FetchFailed, SiteClient
from training.scraping.extract import ImageCandidate, extract_page
from training.scraping.robots import RobotsRules
from training.scraping.urls import host_of, normalise_url

logger = get_logger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")


class StartPageFailed(ImagineerError):
    """Nothing could be scraped: the start page itself was refused or did not load."""

    code = "start_page_failed"


@dataclass
class ScrapeTally:
    """The job's counters; see docs/SCRAPING.md for what each one counts."""

    pages_fetched: int = 0
    pages_failed: int = 0
    discovered: int = 0
    downloaded: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1


@dataclass(frozen=True)
class Page:
    url: str
    depth: int
    images: list[ImageCandidate]


class Crawler:
    def __init__(
        self, start_url: str, config: ScrapingConfig, client: SiteClient, robots: RobotsRules, tally: ScrapeTally
    ):
        self.config = config
        self.client = client
        self.robots = robots
        self.tally = tally
        self.start_url = start_url
        self.site_host = host_of(start_url)
        self.frontier: deque[tuple[str, int]] = deque([(start_url, 0)])
        self.queued: set[str] = {start_url}
        self.pages_requested = 0  # what max_pages bounds: every page request, HTML or not

    @property
    def pages_known(self) -> int:
        """Pages requested or waiting, capped at max_pages: the progress total."""
        return min(self.config.max_pages, self.pages_requested + len(self.frontier))

    def pages(self) -> Iterator[Page]:
        """Each page that loaded, in crawl order, until the frontier is empty or max_pages were tried."""
        while self.frontier and self.pages_requested < self.config.max_pages:
            url, depth = self.frontier.popleft()
            page = self._visit(url, depth)
            if page is not None:
                yield page

    def _refuse(self, url: str, reason: str, detail: str) -> None:
        self.tally.reject(reason)
        if url == self.start_url:
            raise StartPageFailed(
                f"The start page could not be scraped ({reason}): {detail}", details={"reason": reason}
            )

    def _visit(self, url: str, depth: int) -> Page | None:
        try:
            if not self.robots.allows(url):
                self._refuse(url, "robots", "robots.txt disallows it.")
                return None
            self.pages_requested += 1
            fetched = self.client.fetch(url, max_bytes=self.config.max_page_bytes)
        except FetchFailed as exc:
            self.tally.pages_failed += 1
            logger.info("scrape.page_failed", reason=exc.reason, depth=depth)
            self._refuse(url, exc.reason, exc.detail)
            return None
        if fetched.content_type not in HTML_TYPES:
            self._refuse(url, "not_html", f"it is {fetched.content_type or 'of no declared type'}, not HTML.")
            return None
        self.tally.pages_fetched += 1
        if url == self.start_url:
            self.site_host = host_of(fetched.url)
        self.queued.add(fetched.url)
        content = extract_page(fetched.body, fetched.url, charset=fetched.charset)
        if depth < self.config.max_depth:
            for link in content.links:
                self._enqueue(link, depth + 1)
        return Page(url=fetched.url, depth=depth, images=content.images)

    def _enqueue(self, link: str, depth: int) -> None:
        link = normalise_url(link)
        if link is None or link in self.queued:
            return
        self.queued.add(link)
        if self.config.same_host_only and host_of(link) != self.site_host:
            self.tally.reject("other_host")
            return
        self.frontier.append((link, depth))
