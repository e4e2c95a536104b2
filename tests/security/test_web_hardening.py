"""Web hardening: CSRF on every session-authenticated write, secure cookies and HSTS in production."""

import json
import re
import subprocess
import sys

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from tests.processes import ROOT
from tests.production_env import PRODUCTION_ENV

WRITE_METHODS = ("post", "put", "patch", "delete")


def write_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, item in schema["paths"].items():
        for method in item:
            if method in WRITE_METHODS:
                # Any id will do: the CSRF check runs when the user is authenticated, before the view.
                concrete = re.sub(r"\{[^}]+\}", "1", path)
                found.append((method, concrete))
    return sorted(found)


@pytest.mark.django_db
def test_every_session_write_without_a_csrf_token_is_refused(admin_user):
    operations = write_operations()
    assert len(operations) > 30  # the schema was read, not an empty list
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    refused = {}
    for method, path in operations:
        response = getattr(browser, method)(path, data="{}", content_type="application/json")
        body = response.json() if response["Content-Type"].startswith("application/json") else {}
        refused[(method, path)] = (response.status_code, body.get("error", {}).get("message", ""))
    accepted = {op: result for op, result in refused.items() if result[0] != 403 or "CSRF" not in result[1]}
    assert not accepted, f"writes that went through without a CSRF token: {accepted}"


@pytest.mark.django_db
def test_a_session_write_with_the_csrf_token_is_not_refused_for_csrf(admin_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    browser.get("/admin/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/api/albums/", {"name": "With token"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.content


PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client
client = Client(HTTP_HOST="imagineer.example.com")
secure = client.get("/healthz", secure=True)
plain = client.get("/api/images/")
print(json.dumps({
    "hsts": secure.headers.get("Strict-Transport-Security", ""),
    "nosniff": secure.headers.get("X-Content-Type-Options", ""),
    "plain_status": plain.status_code, "plain_location": plain.headers.get("Location", ""),
    "cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
}))
"""


def test_production_sends_hsts_secure_cookies_and_redirects_plain_http(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items()}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            **env,
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
            "IMAGINEER_DATA_DIR": str(tmp_path),
            "STATIC_ROOT": str(tmp_path / "static"),
            "LOG_LEVEL": "ERROR",
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "max-age=31536000" in seen["hsts"] and "includeSubDomains" in seen["hsts"]
    assert seen["nosniff"] == "nosniff"
    assert seen["cookies"] == [True, True, True]  # session and CSRF cookies: Secure; session: HttpOnly
    assert seen["plain_status"] == 301 and seen["plain_location"].startswith("https://imagineer.example.com/")
