"""A live API for the generated clients: a web server and a generation worker on 127.0.0.1, the
schema they serve, and the Node tools of the TypeScript client (tests/clients/package.json)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.test import override_settings
from PIL import Image as PILImage

from tests.browser.web_server import web_server
from tests.processes import OutputWatcher, celery_worker

CLIENTS_DIR = Path(__file__).resolve().parent
NODE_MODULES = CLIENTS_DIR / "node_modules"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class LiveApi:
    url: str
    schema_path: Path  # /api/schema/ as JSON, as the server answered it
    server: OutputWatcher
    worker: OutputWatcher

    def output(self) -> str:
        return self.server.text + self.worker.text


@contextmanager
def live_api(root: Path) -> Iterator[LiveApi]:
    """A web server and a Celery worker (queues generation, default) on this test process's database.

    Both get their own media folder and runtime config path (no file: the defaults) under `root`,
    so they can serve every test of a module; rows come and go with each test.
    """
    media = root / "media"
    media.mkdir()
    with ExitStack() as stack:
        with override_settings(IMAGINEER_CONFIG=root / "runtime-config.yaml"):
            server = stack.enter_context(web_server(media_root=media))
            worker = stack.enter_context(celery_worker(queues="generation,default", media_root=media))
        server.wait_ready()
        response = requests.get(f"{server.url}/api/schema/", params={"format": "json"}, timeout=30)
        assert response.status_code == 200, response.text[:2000]
        schema_path = root / "schema.json"
        schema_path.write_bytes(response.content)
        yield LiveApi(url=server.url, schema_path=schema_path, server=server.output, worker=worker)


def png_bytes(color: str = "teal") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return buffer.getvalue()


def require_node_tools() -> str:
    """The `node` binary, once tests/clients' npm packages are installed.

    Under CI a missing Node or package fails the test; on a developer's machine it skips, saying what to install.
    """
    node = shutil.which("node")
    if node is None:
        _missing(
            "The TypeScript client test needs Node.js 20 or newer (`node` and `npm` on PATH): "
            "install Debian's `nodejs` and `npm` packages (apt-get install nodejs npm), then run `make test`."
        )
    if not (NODE_MODULES / ".package-lock.json").is_file():
        _missing(
            "The TypeScript client test needs the npm packages of tests/clients/package.json: "
            "run `make test` (it runs `npm ci --prefix tests/clients`)."
        )
    return node


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason + " (Under CI this fails.)")


def run_checked(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    """Run a tool; fail the test with its output when it exits non-zero."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}:\n{output[-6000:]}"
    return result.stdout
