"""Fixtures of the browser suite: the machine's Chromium (the suite fails without it) and screenshots.

The web server process and Chromium's launch are in tests/browser/web_server.py and chromium.py.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.chromium import CHROMIUM, Screenshots


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


@pytest.fixture
def screenshots(tmp_path) -> Screenshots:
    return Screenshots(tmp_path / "screenshots")
