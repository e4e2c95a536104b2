"""One error envelope for every API error; request ids on every response and log line."""

import logging

import pytest
from django.test import Client

from tests.assertions import assert_envelope

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_enveloped_404(api_client):
    error = assert_envelope(api_client.get("/api/no-such-thing/"), 404, "not_found")
    assert error["timestamp"].endswith("Z")


def test_non_api_404_stays_html():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_method_not_allowed(admin_client_api):
    assert_envelope(admin_client_api.put("/api/albums/"), 405, "method_not_allowed")


def test_anonymous_write_is_401_with_challenge(api_client):
    response = api_client.post("/api/albums/", {"name": "x"})
    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")


def test_bad_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_envelope(api_client.get("/api/images/"), 401, "authentication_failed")


def test_validation_error_message_names_the_field(admin_client_api):
    error = assert_envelope(admin_client_api.post("/api/albums/", {"name": ""}), 400, "validation_error")
    assert error["message"].startswith("Invalid input: name:")
    assert "name" in error["details"]["fields"]


def test_wrong_content_type_is_415(admin_client_api):
    response = admin_client_api.generic("POST", "/api/albums/", "name=x", content_type="text/plain")
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.urls("tests.core.urls_with_failures")
@pytest.mark.parametrize("url", ["/api/test-failures/drf", "/api/test-failures/plain"])
def test_unhandled_exception_is_500_without_traceback_or_path(url, settings):
    client = Client(raise_request_exception=False)
    response = client.get(url)
    error = assert_envelope(response, 500, "internal_error")
    text = response.content.decode()
    assert "Traceback" not in text
    assert str(settings.MEDIA_ROOT) not in text and str(settings.DATA_DIR) not in text
    assert "trace_id" in error["message"]


def test_request_id_is_echoed_when_sane(api_client):
    response = api_client.get("/api/images/", HTTP_X_REQUEST_ID="client-abc_123.4")
    assert response["X-Request-ID"] == "client-abc_123.4"
    error = assert_envelope(api_client.get("/api/nope/", HTTP_X_REQUEST_ID="req-42"), 404)
    assert error["trace_id"] == "req-42"


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "<script>", "a\nb"])
def test_insane_request_id_is_replaced(api_client, bad):
    response = api_client.get("/api/images/", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


def test_every_log_line_of_a_request_carries_its_id(api_client, caplog):
    with caplog.at_level(logging.INFO):
        api_client.get("/api/images/", HTTP_X_REQUEST_ID="trace-me-1")
    request_lines = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request"]
    assert request_lines, "no request log line"
    line = request_lines[-1]
    assert line["request_id"] == "trace-me-1"
    assert line["status"] == 200 and line["method"] == "GET" and "duration_ms" in line


def test_csrf_is_enforced_for_session_writes(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/albums/", {"name": "x"}, content_type="application/json")
    error = assert_envelope(response, 403, "permission_denied")
    assert "CSRF" in error["message"]
