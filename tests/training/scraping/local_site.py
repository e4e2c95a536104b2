"""A tiny web server on 127.0.0.0/8 for the scraper to crawl: routes by path, every request recorded.

Tests never send traffic anywhere else. 127.0.0.1 is allow-listed (tests/settings.py); a server
bound on 127.0.0.2 stands for "a private address" and records what reached it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
