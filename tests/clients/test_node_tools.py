"""Node and the npm packages of the TypeScript client test: `make test` installs them, and a
machine without them is told what to install (the test fails under CI, skips elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients import live_api

ROOT = Path(__file__).resolve().parents[2]


def test_missing_node_fails_under_ci(monkeypatch):
    monkeypatch.setattr(live_api.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install Debian's `nodejs` and `npm`"):
        live_api.require_node_tools()


def test_missing_node_skips_on_a_developer_machine(monkeypatch):
    monkeypatch.setattr(live_api.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Under CI this fails"):
        live_api.require_node_tools()


def test_missing_npm_packages_name_make_test(monkeypatch, tmp_path):
    monkeypatch.setattr(live_api, "NODE_MODULES", tmp_path / "node_modules")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="run `make test`"):
        live_api.require_node_tools()


@pytest.fixture
def makefile_tree(tmp_path) -> Path:
    """The Makefile and tests/clients' package files, copied: `make node-packages` runs on the copy."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "tests" / "clients").mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "tests" / "clients" / name, tmp_path / "tests" / "clients" / name)
    return tmp_path


def run_make(tree: Path, path: str) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    # Not a sub-make of `make test`: a sub-make prints "Entering directory <tmp path>", and the tmp
    # path holds this test's name (which says "npm").
    env = {key: value for key, value in os.environ.items() if key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(
        [make, "--no-print-directory", "node-packages"],
        cwd=tree,
        env={**env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_says_what_to_install_without_npm(makefile_tree):
    result = run_make(makefile_tree, path=str(makefile_tree / "no-bin"))
    assert "needs Node.js 20+ and npm" in result.stdout and "apt-get install nodejs npm" in result.stdout
    assert not (makefile_tree / "tests" / "clients" / "node_modules").exists()


def test_make_skips_npm_ci_while_node_modules_matches_the_lock_file(makefile_tree):
    installed = makefile_tree / "tests" / "clients" / "node_modules" / ".package-lock.json"
    installed.parent.mkdir()
    installed.write_text("{}")
    lock_file = makefile_tree / "tests" / "clients" / "package-lock.json"
    installed_time = installed.stat().st_mtime
    os.utime(lock_file, (installed_time - 60, installed_time - 60))  # the past: no clock-skew warning
    result = run_make(makefile_tree, path=str(makefile_tree / "no-bin"))  # npm would not even be found
    assert result.returncode == 0 and "npm" not in result.stdout, result.stdout + result.stderr


def test_make_runs_npm_ci_when_the_lock_file_is_newer(makefile_tree):
    fake_bin = makefile_tree / "fake-bin"
    fake_bin.mkdir()
    calls = makefile_tree / "npm-calls"
    # Records its arguments and makes node_modules, as `npm ci` would.
    (fake_bin / "npm").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nmkdir -p tests/clients/node_modules\n')
    (fake_bin / "npm").chmod(0o755)
    result = run_make(makefile_tree, path=f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls.read_text().split()[:3] == ["ci", "--prefix", "tests/clients"]
    assert (makefile_tree / "tests" / "clients" / "node_modules" / ".package-lock.json").exists()
