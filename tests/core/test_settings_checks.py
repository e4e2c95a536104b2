"""Production refuses the embedded defaults; `check --deploy` is clean with the documented env."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.production_env import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("IMAGINEER_", "DATABASE_URL", "CELERY_", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")
        )
    }
    clean.update(
        {
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
            "IMAGINEER_DATA_DIR": str(tmp_path),
            "STATIC_ROOT": str(tmp_path / "static"),
        }
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_documented_production_env(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "check_id", "hint"),
    [
        ({"DATABASE_URL": ""}, "imagineer.E001", "DATABASE_URL=postgres://"),
        ({"DEBUG": "true"}, "imagineer.E002", "DEBUG=false"),
        ({"SECRET_KEY": ""}, "imagineer.E003", "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "imagineer.E003", "SECRET_KEY"),
        ({"CELERY_BROKER_URL": ""}, "imagineer.E005", "CELERY_BROKER_URL=redis://"),
        ({"EMAIL_URL": "consolemail://"}, "imagineer.E006", "EMAIL_URL=smtp+tls://"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, override, check_id, hint):
    env = {**PRODUCTION_ENV, **override}
    env = {k: v for k, v in env.items() if v != ""}
    result = manage("check", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert check_id in output and hint in output


def test_production_without_email_url_sends_no_mail_and_warns(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "EMAIL_URL"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode != 0 and "imagineer.W001" in result.stdout + result.stderr
    assert manage("check", env=env, tmp_path=tmp_path).returncode == 0  # a warning, not a refusal


def test_wsgi_refuses_to_start_with_sqlite_in_production(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", "import imagineer.wsgi"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "IMAGINEER_"))},
            **env,
            "IMAGINEER_DATA_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr and "imagineer.E001" in result.stderr


def test_development_defaults_need_nothing(tmp_path):
    result = manage("check", env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_sign_up_is_closed_unless_configured(tmp_path):
    code = "from django.conf import settings; print('mode=' + settings.IMAGINEER_SIGNUP)"
    result = manage("shell", "-c", code, env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mode=closed" in result.stdout


def test_unknown_sign_up_mode_stops_the_site(tmp_path):
    result = manage("check", env={"IMAGINEER_SIGNUP": "sometimes"}, tmp_path=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "imagineer.E010" in output and "'sometimes'" in output and "closed, allowlist, open" in output
