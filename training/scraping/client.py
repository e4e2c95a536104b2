"""HTTP for the scraper: every request through the private-network guard, redirects followed by hand.

- Redirects are followed here (httpx's follow_redirects is off) so that each hop is checked by the
  guard, and a loop ends with the reason `redirect_loop` at the first URL seen twice, a long chain
  with `too_many_redirects` after `max_redirects` hops.
- Connections are pinned to the address the guard checked: the request goes to the IP itself, with
  the Host header and TLS SNI (httpcore's `sni_hostname` extension; the certificate is verified
  against it) carrying the name. One httpx client per host name, so a pooled TLS connection opened
  for one name is never reused for another name that happens to share the IP.
- `trust_env=False`: an HTTP(S)_PROXY in the worker's environment would connect on the scraper's
  behalf to addresses the guard never saw.
- A response must arrive whole within `request_timeout_seconds` (httpx's timeouts bound each read;
  this bounds a server that drips bytes), and within the byte cap (Content-Length is checked first,
  then the bytes actually read, after content decoding, so a gzip bomb stops at the cap too).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import ScrapingConfig
from training.scraping import guard
from training.scraping.urls import normalise_url

logger = get_logger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
MAX_BACKOFF_SECONDS = 60.0


class FetchFailed(Exception):
    """A request that gave nothing usable; `reason` is the counter it is tallied under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    content_type: str  # the media type, lower-cased, without parameters
    charset: str | None
    body: bytes  # empty when the body was written to a file
    size: int


def _retryable(reason: str) -> bool:
    return reason in {"timeout", "connection_error", "http_429"} or reason.startswith("http_5")


class SiteClient:
    """GET requests for one scrape job. Thread-safe: downloads share it."""

    def __init__(self, config: ScrapingConfig):
        self.config = config
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def _client_for(self, host: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(self.config.request_timeout_seconds),
                    follow_redirects=False,
                    trust_env=False,
                    headers={"User-Agent": self.config.user_agent},
                    limits=httpx.Limits(max_connections=self.config.concurrency + 1),
                )
                self._clients[host] = client
            return client

    def fetch(self, url: str, *, max_bytes: int, dest: Path | None = None, retry: bool = False) -> Fetched:
        """GET `url` (following redirects); write the body to `dest`, or return it. FetchFailed otherwise.

        With `retry`, timeouts, connection errors, 429 and 5xx answers are tried again `retries`
        times, waiting `retry_backoff_seconds` and doubling each time.
        """
        retries_left = self.config.retries if retry else 0
        delay = self.config.retry_backoff_seconds
        while True:
            try:
                return self._follow(url, max_bytes=max_bytes, dest=dest)
            except FetchFailed as exc:
                if retries_left <= 0 or not _retryable(exc.reason):
                    raise
                logger.info("scrape.retry", reason=exc.reason, delay_seconds=delay)
            time.sleep(delay)
            retries_left -= 1
            delay = min(MAX_BACKOFF_SECONDS, delay * 2)

    def _follow(self, url: str, *, max_bytes: int, dest: Path | None) -> Fetched:
        seen = {url}
        current = url
        for _hop in range(self.config.max_redirects + 1):
            location = self._get(current, max_bytes=max_bytes, dest=dest)
            if isinstance(location, Fetched):
                return location
            target = normalise_url(urljoin(current, location))
            if target is None:
                raise FetchFailed("bad_redirect", "A redirect pointed to something other than an http(s) URL.")
            if target in seen:
                raise FetchFailed("redirect_loop", "The redirects went round in a loop.")
            seen.add(target)
            current = target
        raise FetchFailed("too_many_redirects", f"More than {self.config.max_redirects} redirects.")

    def _get(self, url: str, *, max_bytes: int, dest: Path | None) -> Fetched | str:
        """One request without following redirects: the response, or the Location it redirects to."""
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        try:
            resolved = guard.resolve_public(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        except guard.BlockedAddress as exc:
            logger.warning("scrape.blocked_address", host=exc.host, kind=exc.kind)
            raise FetchFailed("blocked_address", str(exc)) from exc
        except guard.UnresolvableHost as exc:
            raise FetchFailed("dns_error", str(exc)) from exc
        netloc_host = f"[{host}]" if ":" in host else host  # an IPv6 literal
        host_header = netloc_host if parsed.port is None else f"{netloc_host}:{parsed.port}"
        client = self._client_for(host)
        last_error: Exception | None = None
        for address in resolved.addresses:
            pinned = parsed.copy_with(host=address)
            extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
            try:
                with client.stream("GET", pinned, headers={"Host": host_header}, extensions=extensions) as response:
                    return self._read(url, response, max_bytes=max_bytes, dest=dest)
            except httpx.ConnectError as exc:
                last_error = exc  # the next checked address, if the name has more than one
            except httpx.TimeoutException as exc:
                raise FetchFailed("timeout", f"No answer within {self.config.request_timeout_seconds:g} s.") from exc
            except httpx.HTTPError as exc:
                raise FetchFailed("connection_error", f"The connection failed ({type(exc).__name__}).") from exc
        raise FetchFailed("connection_error", f"Could not connect to {host}.") from last_error

    def _read(self, url: str, response: httpx.Response, *, max_bytes: int, dest: Path | None) -> Fetched | str:
        if response.status_code in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise FetchFailed("bad_redirect", "A redirect without a Location header.")
            return location
        if not 200 <= response.status_code < 300:
            raise FetchFailed(f"http_{response.status_code}", f"The server answered {response.status_code}.")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchFailed("too_large", f"{int(declared):,} bytes, over the {max_bytes:,}-byte limit.")
        deadline = time.monotonic() + self.config.request_timeout_seconds
        size = 0
        chunks: list[bytes] = []
        handle = dest.open("wb") if dest is not None else None
        try:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchFailed("too_large", f"Over the {max_bytes:,}-byte limit.")
                if time.monotonic() > deadline:
                    raise FetchFailed("timeout", f"Not complete within {self.config.request_timeout_seconds:g} s.")
                if handle is not None:
                    handle.write(chunk)
                else:
                    chunks.append(chunk)
        except BaseException:
            if handle is not None:
                handle.close()
                dest.unlink(missing_ok=True)  # a partial download never stays in scratch
            raise
        if handle is not None:
            handle.close()
        media_type = response.headers.get("content-type", "")
        return Fetched(
            url=url,
            content_type=media_type.split(";", 1)[0].strip().lower(),
            charset=response.charset_encoding,
            body=b"".join(chunks),
            size=size,
        )
