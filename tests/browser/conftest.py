"""A real web server process and Debian's headless Chromium, driven by Playwright, for admin tests.

Chromium comes from the machine (`make browser` installs Debian's package), never from Playwright's
own download: the test machines reach no browser CDN. Every page the browser opens may only reach
127.0.0.0/8; anything else is aborted and recorded, and the test fails on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.processes import ROOT, OutputWatcher, base_env, free_port, stop_process, test_database_url, wait_serving

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# What the closed test network needs: no sandbox (root), no GPU, and none of Chromium's own
# connections (QUIC probes, component updates, sync, first-run pings), which the network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts" / "browser"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM} and it is not there. Install it with `make browser` "
            "(as root it runs `apt-get install chromium`; otherwise install Debian's `chromium` package, or point "
            "CHROMIUM_PATH at a Chromium binary). Playwright's own browser download is not used.",
            pytrace=False,
        )
    return CHROMIUM


@dataclass
class WebServer:
    url: str
    proc: subprocess.Popen
    output: OutputWatcher

    def wait_ready(self, timeout: float = 90) -> None:
        wait_serving(f"{self.url}/healthz", self.proc, self.output, timeout)


@contextmanager
def web_server(*, media_root: Path) -> Iterator[WebServer]:
    """`manage.py runserver --noreload` on 127.0.0.1:<free port>, on this test's database, broker and media.

    Yields as soon as the process is started, so it can boot while a worker does: call wait_ready().
    """
    port = free_port()
    env = base_env(
        IMAGINEER_DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        MEDIA_ROOT=str(media_root),
        IMAGINEER_CONFIG=str(settings.IMAGINEER_CONFIG),
        IMAGINEER_SCRATCH_DIR=str(settings.IMAGINEER_SCRATCH_DIR),
        **({"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}),
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield WebServer(url=f"http://127.0.0.1:{port}", proc=proc, output=OutputWatcher(proc))
    finally:
        stop_process(proc)


@dataclass
class PageProblems:
    """What went wrong in the browser, beyond what a test asserts: it must stay empty."""

    offsite_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def watch(self, context, *, console: bool = True) -> None:
        """Record on every page of `context`; console=False where the test provokes refusals (404s)."""

        def only_loopback(route):
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:", "about:")) or host.startswith("127."):
                route.continue_()
            else:
                self.offsite_requests.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        context.on("page", lambda page: self._watch_page(page, console=console))

    def _watch_page(self, page, *, console: bool) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))
        if console:
            page.on(
                "console",
                lambda message: message.type == "error" and self.console_errors.append(f"{page.url}: {message.text}"),
            )
        page.on(
            "response",
            lambda response: response.status >= 500 and self.server_errors.append(f"{response.status} {response.url}"),
        )

    def as_dict(self) -> dict[str, list[str]]:
        found = {
            "offsite_requests": self.offsite_requests,
            "page_errors": self.page_errors,
            "console_errors": self.console_errors,
            "server_errors": self.server_errors,
        }
        return {name: value for name, value in found.items() if value}


class Screenshots:
    """Full-page screenshots under the test's tmp path, each copied at once to artifacts/browser/."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        # A stable place to look after the run (git-ignored); only the latest run's pictures.
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(self, page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy2(path, ARTIFACTS / path.name)
        return path


@contextmanager
def launched_chromium(executable: str):
    """Headless Chromium under Playwright's sync API.

    That API runs an event loop in this thread, where Django refuses ORM calls: set up the
    database before entering, and read results through the browser while inside.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives Chromium a new empty profile (user-data-dir) of its own each time.
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshots(tmp_path) -> Screenshots:
    return Screenshots(tmp_path / "screenshots")
