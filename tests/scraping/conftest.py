"""Local web sites for the scraper to crawl: real HTTP servers on 127.0.0.0/8, one per fixture.

Tests never send traffic anywhere else. 127.0.0.1 is allow-listed (tests/settings.py); a server
bound on 127.0.0.2 stands for "a private address" and records what reached it.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage

from imagineer.core import jobs
from training.models import ScrapeJob
from training.scraping import services


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fail_first: int = 0  # answer 503 this many times before the real answer
    on_request: Callable[[], None] | None = None


class LocalSite:
    """A tiny web server: routes by path, every request's path kept in `requests`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                with site._lock:
                    site.requests.append(path)
                    route = site.routes.get(path)
                    failing = route is not None and route.fail_first > 0
                    if failing:
                        route.fail_first -= 1
                if route is None or failing:
                    self.send_response(404 if route is None else 503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.on_request is not None:
                    route.on_request()
                time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up on a slow answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll: shutdown() waits up to one poll interval, at the end of every test.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def page(self, path: str, body: str, **route) -> None:
        self.routes[path] = Route(body=f"<!doctype html><html><body>{body}</body></html>".encode(), **route)

    def file(self, path: str, body: bytes, content_type: str = "image/jpeg", **route) -> None:
        self.routes[path] = Route(body=body, content_type=content_type, **route)

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = Route(status=302, headers={"Location": location}, content_type="text/plain")

    def hits(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    server = LocalSite("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def private_recorder():
    """A server on 127.0.0.2 (loopback, not allow-listed): anything arriving here got past the guard."""
    server = LocalSite("127.0.0.2")
    yield server
    server.close()


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


@pytest.fixture(autouse=True)
def scraping_config(runtime_config_file: Path) -> dict:
    runtime_config_file.write_text(yaml.safe_dump({"scraping": TEST_SCRAPING_CONFIG}))
    return TEST_SCRAPING_CONFIG


@pytest.fixture(autouse=True)
def scratch_dir(settings, tmp_path) -> Path:
    path = tmp_path / "scratch"
    settings.IMAGINEER_SCRATCH_DIR = path
    return path


def run_scrape(url: str, *, user=None, **overrides) -> ScrapeJob:
    """Start a job through the service and run its body here, as a worker would."""
    job = services.start_scrape_job(url=url, user=user, overrides=overrides)
    jobs.run_job(ScrapeJob, job.pk, services.run_scrape_job)
    job.refresh_from_db()
    return job
