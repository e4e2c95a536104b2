"""robots.txt, as RFC 9309 reads it: fetched once per origin per job, through the same guarded client.

- 2xx: the rules apply (parsed by Protego: wildcards, `$`, longest match, Allow over Disallow).
- 4xx (404 and also 401/403): "unavailable", so everything is allowed.
- 5xx, timeouts, connection errors, redirect loops, a file over 512 KiB: "unreachable", so nothing
  on that origin is fetched (the RFC's "complete disallow"); the job tallies such URLs `robots`.
- A host the private-network guard refuses: the URL is tallied `blocked_address`, not `robots`.
Rules are looked up with the configured user agent. Crawl-delay is not honoured: downloads are
already bounded by `concurrency`.
"""

from __future__ import annotations

from protego import Protego

from training.scraping.client import FetchFailed, SiteClient
from training.scraping.urls import origin_of

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
ALLOW_ALL = "allow-all"
DISALLOW_ALL = "disallow-all"


class RobotsRules:
    """Answers "may this URL be fetched?" for one job; not shared between threads."""

    def __init__(self, client: SiteClient, *, enabled: bool):
        self.client = client
        self.enabled = enabled
        self._rules: dict[str, Protego | str | FetchFailed] = {}

    def allows(self, url: str) -> bool:
        """False when robots.txt disallows the URL; FetchFailed(blocked_address) when its host is refused."""
        if not self.enabled:
            return True
        origin = origin_of(url)
        if origin not in self._rules:
            self._rules[origin] = self._load(origin)
        rules = self._rules[origin]
        if isinstance(rules, FetchFailed):
            raise rules
        if rules == ALLOW_ALL:
            return True
        if rules == DISALLOW_ALL:
            return False
        return rules.can_fetch(url, self.client.config.user_agent)

    def _load(self, origin: str) -> Protego | str | FetchFailed:
        try:
            fetched = self.client.fetch(f"{origin}/robots.txt", max_bytes=ROBOTS_MAX_BYTES)
        except FetchFailed as exc:
            if exc.reason == "blocked_address":
                return exc
            if exc.reason.startswith("http_4"):
                return ALLOW_ALL
            return DISALLOW_ALL
        return Protego.parse(fetched.body.decode(fetched.charset or "utf-8", errors="replace"))
