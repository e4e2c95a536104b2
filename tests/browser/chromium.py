"""Debian's headless Chromium under Playwright, kept on 127.0.0.0/8, and what the browser suite records of it.

Chromium comes from the machine (`make browser` installs Debian's package), never from Playwright's
own download: the test machines reach no browser CDN. Every page the browser opens may only reach
127.0.0.0/8; anything else is aborted and recorded, and the test fails on it.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.processes import ROOT

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
