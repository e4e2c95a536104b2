"""The gates CI runs before the tests (.ci/gates), and its refusal to pass without PostgreSQL/Redis.

The gates run on a copy of the checkout, so a test can add an unformatted file or a model change
without a migration and see CI refuse it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def checkout_copy(target: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) copied to `target`, without .venv or data."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run_gates(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "IMAGINEER_DATA_DIR": str(tree / "data")}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the gates use the project's own settings, as CI does
    return subprocess.run(
        ["bash", ".ci/gates"], cwd=tree, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return checkout_copy(tmp_path_factory.mktemp("checkout"))


def test_the_checkout_passes_its_gates(tree):
    result = run_gates(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Gates passed." in result.stdout


def test_an_unformatted_file_and_a_missing_migration_fail_the_gates(tmp_path):
    tree = checkout_copy(tmp_path)
    (tree / "albums" / "unformatted.py").write_text("values = {'a':1,\n  'b' :2}\n")
    models = tree / "albums" / "models.py"
    models.write_text(
        models.read_text()
        + "\n\nclass GateProbe(models.Model):\n    name = models.CharField(max_length=10)\n\n"
        + "    def __str__(self) -> str:\n        return self.name\n"
    )

    result = run_gates(tree)

    assert result.returncode == 1
    assert "albums/unformatted.py" in result.stdout + result.stderr
    assert "Gate failed: ruff format" in result.stdout
    assert "Gate failed: makemigrations" in result.stdout
    assert "Gate failed: ruff check" not in result.stdout  # each gate names only its own problem


def listening_port() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def closed_port() -> int:
    server, port = listening_port()
    server.close()  # nothing listens there now
    return port


def require_services(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key != "CI"}
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "require-services")],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_ci_fails_when_postgresql_does_not_answer():
    redis, redis_port = listening_port()
    with redis:
        result = require_services({"CI": "true", "POSTGRES_PORT": str(closed_port()), "REDIS_PORT": str(redis_port)})
    assert result.returncode == 1
    assert "PostgreSQL" in result.stdout and "CI fails" in result.stdout


def test_outside_ci_a_missing_service_skips_the_pass_and_says_so():
    result = require_services({"POSTGRES_PORT": str(closed_port()), "REDIS_PORT": str(closed_port())})
    assert result.returncode == 2
    assert "PostgreSQL" in result.stdout and "Redis" in result.stdout and "skipping" in result.stdout


def test_services_that_answer_let_the_pass_run_under_ci():
    postgres, postgres_port = listening_port()
    redis, redis_port = listening_port()
    with postgres, redis:
        result = require_services({"CI": "true", "POSTGRES_PORT": str(postgres_port), "REDIS_PORT": str(redis_port)})
    assert result.returncode == 0, result.stdout
