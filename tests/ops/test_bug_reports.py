"""Bug reports: submission (validation, storage, redaction, limits), the admin API and the console."""

from __future__ import annotations

import base64
import io
import json
import os
import re

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from rest_framework.test import APIClient

from imagineer.ops.models import BugReport, BugReportStatus
from imagineer.ops.services import bug_reports
from tests.assertions import assert_envelope, files_under
from tests.factories import AdminFactory, image_bytes

pytestmark = pytest.mark.django_db

URL = "/api/bug-reports"
REPORT_ID = re.compile(r"^bug_\d{8}_\d{6}_[0-9a-f]{12}$")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def log_entry(**overrides) -> dict:
    return {
        "level": "error",
        "message": "Failed to load album",
        "args": [{"status": 500}],
        "timestamp": "2026-12-01T12:00:00.000Z",
        "serializedArgs": ['{"status":500}'],
        **overrides,
    }


def network_event(**overrides) -> dict:
    return {
        "id": "req-1",
        "method": "GET",
        "url": "https://imagineer.test/api/albums/3",
        "started_at": 1764590400000,
        "requestHeaders": [{"name": "Accept", "value": "application/json"}],
        "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
        **overrides,
    }


def full_payload(**overrides) -> dict:
    return {
        "description": "The album page stays blank.",
        "expectedBehavior": "The album's images show.",
        "actualBehavior": "A spinner forever.",
        "stepsToReproduce": ["Open /albums/3", "Wait"],
        "environment": {"mode": "production", "appVersion": "2.1.0", "gitSha": "abc1234", "buildTime": "2026-11-30"},
        "clientMeta": {
            "locationHref": "https://imagineer.test/albums/3",
            "userAgent": "Mozilla/5.0",
            "platform": "Linux x86_64",
            "language": "en-GB",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "viewport": {"width": 1440, "height": 900},
        },
        "appState": {"route": "/albums/3", "user": {"isAdmin": True}},
        "recentLogs": [log_entry(), log_entry(level="warn", message="slow", args=[], timestamp=1764590400123)],
        "networkEvents": [
            network_event(
                completed_at=1764590400500,
                duration_ms=500.5,
                status=500,
                ok=False,
                trace_id="srv-trace-1",
                requestBody=None,
                responseBody={"error": {"code": "internal_error"}},
                error="Internal Server Error",
            )
        ],
        "screenshot": "data:image/png;base64," + b64(image_bytes("PNG", size=(320, 200))),
        **overrides,
    }


def post(client, body, **extra):
    if isinstance(body, str | bytes):
        return client.post(URL, body, content_type="application/json", **extra)
    return client.post(URL, body, format="json", **extra)


def field_errors(error: dict, dotted: str):
    """The messages error.details.fields holds at `dotted` (e.g. "recentLogs.0.level")."""
    node = error["details"]["fields"]
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, (dotted, error["details"])
        node = node[part]
    return node


def submit(client, **overrides) -> BugReport:
    response = post(client, full_payload(**overrides))
    assert response.status_code == 201, response.json()
    return BugReport.objects.get(report_id=response.json()["report_id"])


# --- A valid submission ------------------------------------------------------------------------


def test_full_payload_is_stored_with_user_request_id_and_screenshot(admin_client_api, admin_user, media_root):
    payload = full_payload()
    response = post(admin_client_api, payload, HTTP_X_REQUEST_ID="bug-test-request-1")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"report_id", "trace_id", "stored_at", "status", "has_screenshot"}
    assert REPORT_ID.match(body["report_id"])
    assert body["trace_id"] == "bug-test-request-1" == response["X-Request-ID"]
    assert body["status"] == "open" and body["has_screenshot"] is True

    report = BugReport.objects.get(report_id=body["report_id"])
    assert report.submitted_by == admin_user
    assert report.request_id == "bug-test-request-1"
    assert report.description == payload["description"]
    assert report.expected_behavior == payload["expectedBehavior"]
    assert report.actual_behavior == payload["actualBehavior"]
    assert report.steps_to_reproduce == payload["stepsToReproduce"]
    assert report.environment == payload["environment"]
    assert report.client_meta == payload["clientMeta"]
    assert report.app_state == payload["appState"]
    assert report.recent_logs == payload["recentLogs"]
    assert report.network_events == payload["networkEvents"]
    assert report.status == BugReportStatus.OPEN
    assert report.screenshot_error == ""

    name = f"bug_reports/{report.report_id}/screenshot.png"
    assert report.screenshot.name == name
    assert files_under(media_root) == [name]
    with default_storage.open(name, "rb") as handle:
        with PILImage.open(handle) as img:
            assert (img.format, img.size) == ("PNG", (320, 200))
            img.verify()


def test_only_a_description_is_required(admin_client_api, media_root):
    response = post(admin_client_api, {"description": "Something broke"})
    assert response.status_code == 201, response.json()
    report = BugReport.objects.get()
    assert (report.environment, report.recent_logs, report.network_events, report.steps_to_reproduce) == (
        {},
        [],
        [],
        [],
    )
    assert response.json()["has_screenshot"] is False
    assert files_under(media_root) == []


def test_snake_case_behaviour_keys_are_accepted(admin_client_api):
    response = post(admin_client_api, {"description": "x", "expected_behavior": "works", "actual_behavior": "does not"})
    assert response.status_code == 201, response.json()
    report = BugReport.objects.get()
    assert (report.expected_behavior, report.actual_behavior) == ("works", "does not")


@pytest.mark.parametrize("fmt, extension", [("JPEG", "jpg"), ("WEBP", "webp")])
def test_jpeg_and_webp_screenshots_keep_their_format(admin_client_api, media_root, fmt, extension):
    report = submit(admin_client_api, screenshot=b64(image_bytes(fmt)))  # no data: prefix
    assert report.screenshot.name == f"bug_reports/{report.report_id}/screenshot.{extension}"
    assert files_under(media_root) == [report.screenshot.name]


def test_screenshot_larger_than_the_sites_json_limit_is_accepted(admin_client_api, settings, media_root):
    noise = PILImage.frombytes("RGB", (1100, 1000), os.urandom(1100 * 1000 * 3))  # PNG cannot shrink noise
    out = io.BytesIO()
    noise.save(out, "PNG")
    assert out.tell() > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    report = submit(admin_client_api, screenshot=b64(out.getvalue()))
    assert default_storage.size(report.screenshot.name) == out.tell()


def test_screenshot_error_is_kept_without_a_screenshot(admin_client_api, media_root):
    report = submit(admin_client_api, screenshot=None, screenshotError="html2canvas: tainted canvas")
    assert report.screenshot_error == "html2canvas: tainted canvas"
    assert not report.screenshot.name
    assert files_under(media_root) == []


def test_secret_headers_are_redacted_before_storing(admin_client_api):
    event = network_event(
        requestHeaders=[
            {"name": "Authorization", "value": "Token abc123"},
            {"name": "cookie", "value": "sessionid=s3cret"},
            {"name": "X-API-Key", "value": "k-123"},
            {"name": "Accept", "value": "application/json"},
        ],
        responseHeaders=[
            {"name": "Set-Cookie", "value": "csrftoken=t0ken; Path=/"},
            {"name": "Content-Type", "value": "application/json"},
        ],
    )
    report = submit(admin_client_api, networkEvents=[event])

    stored = report.network_events[0]
    assert stored["requestHeaders"] == [
        {"name": "Authorization", "value": "[REDACTED]"},
        {"name": "cookie", "value": "[REDACTED]"},
        {"name": "X-API-Key", "value": "[REDACTED]"},
        {"name": "Accept", "value": "application/json"},
    ]
    assert stored["responseHeaders"] == [
        {"name": "Set-Cookie", "value": "[REDACTED]"},
        {"name": "Content-Type", "value": "application/json"},
    ]
    raw = json.dumps(report.network_events)
    assert "abc123" not in raw and "s3cret" not in raw and "k-123" not in raw and "t0ken" not in raw


# --- Invalid submissions: 400 naming the field, nothing stored ---------------------------------

NOT_AN_IMAGE = b64(b"hello, this is plain text and not an image at all")
TRUNCATED_PNG = b64(image_bytes("PNG", size=(200, 200))[:300])
GIF = b64(image_bytes("GIF"))
OVERSIZED = b64(b"\0" * (bug_reports.MAX_SCREENSHOT_BYTES + 1))

INVALID_PAYLOADS = [
    # (test id, body, code, field path in details.fields)
    ("not-json", "{not json", "malformed_request", None),
    ("null-body", "null", "validation_error", "non_field_errors"),
    ("array-body", "[]", "validation_error", "non_field_errors"),
    ("string-body", '"a bug"', "validation_error", "non_field_errors"),
    ("missing-description", {k: v for k, v in full_payload().items() if k != "description"}, None, "description"),
    ("blank-description", full_payload(description="   "), None, "description"),
    ("description-not-a-string", full_payload(description=42), None, "description"),
    ("too-long-description", full_payload(description="x" * 10_001), None, "description"),
    ("unknown-field", full_payload(severity="high"), None, "severity"),
    ("both-behaviour-spellings", full_payload(expected_behavior="also"), None, "expected_behavior"),
    ("environment-without-mode", full_payload(environment={"appVersion": "1"}), None, "environment.mode"),
    ("environment-unknown-key", full_payload(environment={"mode": "dev", "x": 1}), None, "environment.x"),
    ("clientmeta-without-location", full_payload(clientMeta={"userAgent": "x"}), None, "clientMeta.locationHref"),
    ("steps-not-a-list", full_payload(stepsToReproduce="open the page"), None, "stepsToReproduce"),
    ("steps-not-strings", full_payload(stepsToReproduce=["open", 2]), None, "stepsToReproduce.1"),
    ("app-state-not-an-object", full_payload(appState=[1, 2]), None, "appState"),
    (
        "log-missing-key",
        full_payload(recentLogs=[{k: v for k, v in log_entry().items() if k != "serializedArgs"}]),
        None,
        "recentLogs.0.serializedArgs",
    ),
    ("log-not-an-object", full_payload(recentLogs=["error: boom"]), None, "recentLogs.0"),
    ("too-many-logs", full_payload(recentLogs=[log_entry()] * 201), None, "recentLogs"),
    (
        "network-event-missing-url",
        full_payload(networkEvents=[{k: v for k, v in network_event().items() if k != "url"}]),
        None,
        "networkEvents.0.url",
    ),
    (
        "network-event-bad-header",
        full_payload(networkEvents=[network_event(requestHeaders=[{"name": "Accept"}])]),
        None,
        "networkEvents.0.requestHeaders.0.value",
    ),
    (
        "network-event-bad-status",
        full_payload(networkEvents=[network_event(status="teapot")]),
        None,
        "networkEvents.0.status",
    ),
    ("too-many-network-events", full_payload(networkEvents=[network_event()] * 51), None, "networkEvents"),
    ("screenshot-not-base64", full_payload(screenshot="data:image/png;base64,@@not base64@@"), None, "screenshot"),
    ("screenshot-not-an-image", full_payload(screenshot=NOT_AN_IMAGE), None, "screenshot"),
    ("screenshot-truncated-png", full_payload(screenshot=TRUNCATED_PNG), None, "screenshot"),
    ("screenshot-gif", full_payload(screenshot=GIF), None, "screenshot"),
    ("screenshot-oversized", full_payload(screenshot=OVERSIZED), None, "screenshot"),
]


@pytest.mark.parametrize(
    "body, code, field", [case[1:] for case in INVALID_PAYLOADS], ids=[case[0] for case in INVALID_PAYLOADS]
)
def test_invalid_payload_is_refused_naming_the_field(admin_client_api, media_root, body, code, field):
    error = assert_envelope(post(admin_client_api, body), 400, code or "validation_error")

    if field is not None:
        assert field_errors(error, field)
        if "." not in field and field != "non_field_errors":
            assert field in error["message"]
    assert not BugReport.objects.exists()
    assert files_under(media_root) == []


def test_body_not_utf8_is_malformed(admin_client_api):
    assert_envelope(post(admin_client_api, b'{"description": "\xff\xfe"}'), 400, "malformed_request")
    assert not BugReport.objects.exists()


def test_body_that_is_not_json_content_is_415(admin_client_api):
    response = admin_client_api.post(URL, "description=x", content_type="application/x-www-form-urlencoded")
    assert_envelope(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_refused_before_it_is_read(admin_client_api, monkeypatch, media_root):
    monkeypatch.setattr(bug_reports, "MAX_BODY_BYTES", 1_000)
    error = assert_envelope(post(admin_client_api, full_payload()), 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 1_000
    assert not BugReport.objects.exists() and files_under(media_root) == []


def broken_save(self, *args, **kwargs):
    raise RuntimeError("database went away")


def test_failure_after_the_file_was_written_removes_it(admin_user, media_root, monkeypatch):
    monkeypatch.setattr(BugReport, "save", broken_save)
    screenshot = b64(image_bytes("PNG"))
    with pytest.raises(RuntimeError):
        bug_reports.submit_bug_report(admin_user, {"description": "x", "screenshot": screenshot}, request_id="r1")
    assert files_under(media_root) == []


def test_failure_to_store_answers_500_and_leaves_nothing(admin_client_api, media_root, monkeypatch):
    monkeypatch.setattr(BugReport, "save", broken_save)
    assert_envelope(post(admin_client_api, full_payload()), 500, "internal_error")
    assert files_under(media_root) == []


# --- Who may submit, and how often -------------------------------------------------------------


def test_anonymous_submission_is_401(api_client, media_root):
    assert_envelope(post(api_client, full_payload()), 401, "not_authenticated")
    assert not BugReport.objects.exists() and files_under(media_root) == []


def test_non_admin_submission_is_403(user_client_api, media_root):
    assert_envelope(post(user_client_api, full_payload()), 403, "permission_denied")
    assert not BugReport.objects.exists() and files_under(media_root) == []


def test_submissions_over_the_rate_are_429_per_admin(admin_client_api, settings):
    settings.IMAGINEER_BUG_REPORT_RATE = "2/h"
    for _ in range(2):
        assert post(admin_client_api, {"description": "x"}).status_code == 201

    response = post(admin_client_api, {"description": "x"})
    error = assert_envelope(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1 and error["details"]["retry_after"] >= 1
    assert BugReport.objects.count() == 2

    other_admin = APIClient()
    other_admin.force_authenticate(AdminFactory())
    assert post(other_admin, {"description": "x"}).status_code == 201


def test_default_rate_is_30_an_hour(admin_client_api):
    for _ in range(30):
        assert post(admin_client_api, {"description": "x"}).status_code == 201
    assert_envelope(post(admin_client_api, {"description": "x"}), 429, "rate_limited")


# --- The service directly ----------------------------------------------------------------------


def test_decode_screenshot_accepts_a_data_url_with_line_breaks():
    encoded = b64(image_bytes("PNG"))
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    screenshot = bug_reports.decode_screenshot("data:image/png;base64," + wrapped)
    assert screenshot is not None and screenshot.format == "PNG"


@pytest.mark.parametrize("value", [None, ""])
def test_decode_screenshot_of_nothing_is_none(value):
    assert bug_reports.decode_screenshot(value) is None


def test_report_ids_are_time_ordered_and_random():
    ids = {bug_reports.new_report_id() for _ in range(100)}
    assert len(ids) == 100 and all(REPORT_ID.match(i) for i in ids)


# --- The admin API: list, detail, status -------------------------------------------------------


def test_list_shows_reports_without_their_payload(admin_client_api):
    report = submit(admin_client_api)
    response = admin_client_api.get(URL)
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["report_id"] == report.report_id and row["submitted_by"] == report.submitted_by.username
    assert row["has_screenshot"] is True
    assert "recent_logs" not in row and "network_events" not in row


def test_lists_do_not_load_the_payloads(admin_client_api, admin_browser):
    """A report's logs, network events and state can be megabytes: the list pages never read them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    submit(admin_client_api)
    for client, url in ((admin_client_api, URL), (admin_browser, "/admin/ops/bugreport/")):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        selects = [q["sql"] for q in queries.captured_queries if '"ops_bugreport"' in q["sql"] and "SELECT" in q["sql"]]
        assert selects and not any("recent_logs" in sql or "network_events" in sql for sql in selects), selects


def test_list_filters_by_status(admin_client_api):
    open_report = submit(admin_client_api)
    resolved = submit(admin_client_api)
    bug_reports.update_status(resolved, status=BugReportStatus.RESOLVED)
    ids = [row["report_id"] for row in admin_client_api.get(URL, {"status": "open"}).json()["results"]]
    assert ids == [open_report.report_id]


def test_detail_has_the_payload_and_no_file_path(admin_client_api):
    report = submit(admin_client_api)
    response = admin_client_api.get(f"{URL}/{report.report_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["recent_logs"] == report.recent_logs and body["client_meta"] == report.client_meta
    assert body["has_screenshot"] is True and "screenshot" not in body
    assert "bug_reports/" not in response.content.decode() and "screenshot.png" not in response.content.decode()


def test_unknown_report_is_404(admin_client_api):
    assert_envelope(admin_client_api.get(f"{URL}/bug_20260101_000000_000000000000"), 404, "not_found")


def test_patch_changes_status_and_notes(admin_client_api):
    report = submit(admin_client_api)
    response = admin_client_api.patch(
        f"{URL}/{report.report_id}", {"status": "resolved", "resolution_notes": "Fixed in 2.1.1"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "resolved"
    report.refresh_from_db()
    assert (report.status, report.resolution_notes) == ("resolved", "Fixed in 2.1.1")


def test_patch_with_an_unknown_status_is_400(admin_client_api):
    report = submit(admin_client_api)
    error = assert_envelope(
        admin_client_api.patch(f"{URL}/{report.report_id}", {"status": "closed"}, format="json"), 400
    )
    assert field_errors(error, "status")


def test_reading_and_changing_need_an_admin(admin_client_api, user_client_api, api_client):
    report = submit(admin_client_api)
    assert_envelope(api_client.get(URL), 401, "not_authenticated")
    assert_envelope(user_client_api.get(URL), 403, "permission_denied")
    assert_envelope(user_client_api.get(f"{URL}/{report.report_id}"), 403, "permission_denied")
    assert_envelope(user_client_api.patch(f"{URL}/{report.report_id}", {"status": "resolved"}, format="json"), 403)
    report.refresh_from_db()
    assert report.status == BugReportStatus.OPEN


def test_schema_describes_the_endpoints(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "post" in schema["paths"]["/api/bug-reports/"]
    assert "patch" in schema["paths"]["/api/bug-reports/{report_id}/"]


# --- The console -------------------------------------------------------------------------------

ADMIN_URL = "/admin/ops/bugreport/"


def test_console_lists_and_searches_reports(admin_client_api, admin_browser):
    first = submit(admin_client_api, description="Album page blank")
    second = submit(admin_client_api, description="Upload fails")

    page = admin_browser.get(ADMIN_URL).content.decode()
    assert first.report_id in page and second.report_id in page and "Album page blank" in page

    found = admin_browser.get(ADMIN_URL, {"q": "upload"}).content.decode()
    assert second.report_id in found and first.report_id not in found


def test_console_filters_by_status(admin_client_api, admin_browser):
    first, second = submit(admin_client_api), submit(admin_client_api)
    bug_reports.update_status(second, status=BugReportStatus.TRIAGED)
    page = admin_browser.get(ADMIN_URL, {"status__exact": "triaged"}).content.decode()
    assert second.report_id in page and first.report_id not in page


def test_console_detail_shows_payload_and_screenshot(admin_client_api, admin_browser):
    report = submit(admin_client_api)
    page = admin_browser.get(f"{ADMIN_URL}{report.pk}/change/").content.decode()
    assert "Failed to load album" in page  # recent logs, pretty JSON
    assert "&quot;locationHref&quot;: &quot;https://imagineer.test/albums/3&quot;" in page
    screenshot_url = f"{ADMIN_URL}{report.pk}/screenshot/"
    assert f'src="{screenshot_url}"' in page
    assert 'name="description"' not in page  # the client's text is read-only
    assert 'name="status"' in page and 'name="resolution_notes"' in page

    response = admin_browser.get(screenshot_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    with default_storage.open(report.screenshot.name, "rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()


def test_console_screenshot_needs_a_signed_in_admin(admin_client_api, client):
    report = submit(admin_client_api)
    response = client.get(f"{ADMIN_URL}{report.pk}/screenshot/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_console_has_no_add_page(admin_browser):
    assert admin_browser.get(f"{ADMIN_URL}add/").status_code == 403


def test_console_saves_status_and_notes(admin_client_api, admin_browser):
    report = submit(admin_client_api)
    response = admin_browser.post(
        f"{ADMIN_URL}{report.pk}/change/", {"status": "wont_fix", "resolution_notes": "Browser bug", "_save": "Save"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    report.refresh_from_db()
    assert (report.status, report.resolution_notes) == ("wont_fix", "Browser bug")
    assert report.description == "The album page stays blank."


@pytest.mark.parametrize(
    "action, status",
    [("mark_triaged", "triaged"), ("mark_resolved", "resolved"), ("mark_wont_fix", "wont_fix")],
)
def test_console_bulk_actions_change_status(admin_client_api, admin_browser, action, status):
    reports = [submit(admin_client_api), submit(admin_client_api)]
    untouched = submit(admin_client_api)
    response = admin_browser.post(ADMIN_URL, {"action": action, "_selected_action": [r.pk for r in reports]})
    assert response.status_code == 302
    assert sorted(BugReport.objects.filter(status=status).values_list("pk", flat=True)) == sorted(r.pk for r in reports)
    untouched.refresh_from_db()
    assert untouched.status == BugReportStatus.OPEN


def test_console_delete_removes_the_screenshot(
    admin_client_api, admin_browser, media_root, django_capture_on_commit_callbacks
):
    report = submit(admin_client_api)
    assert files_under(media_root)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(f"{ADMIN_URL}{report.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not BugReport.objects.exists() and files_under(media_root) == []
