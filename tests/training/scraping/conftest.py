"""Fixtures of the scraping suites: local web sites (real HTTP servers, one per fixture), the small
scraping config and a scratch folder of each test's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.training.scraping.helpers import TEST_SCRAPING_CONFIG
from tests.training.scraping.local_site import LocalSite


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


@pytest.fixture(autouse=True)
def scraping_config(runtime_config_file: Path) -> dict:
    runtime_config_file.write_text(yaml.safe_dump({"scraping": TEST_SCRAPING_CONFIG}))
    return TEST_SCRAPING_CONFIG


@pytest.fixture(autouse=True)
def scratch_dir(settings, tmp_path) -> Path:
    path = tmp_path / "scratch"
    settings.IMAGINEER_SCRATCH_DIR = path
    return path
