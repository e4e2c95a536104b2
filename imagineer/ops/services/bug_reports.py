"""Bug reports: what an admin's client saw when something went wrong, stored for triage.

A submission is validated by the API's serializer (shape and sizes); this module decides the rest:
the screenshot is decoded and verified with Pillow (a bad one refuses the whole submission, so the
client learns at once rather than an operator finding a report without its picture), secrets the
client captured in network headers are redacted, and row and file are written together: no row
points at a missing file and no file is left without its row.

Files live in the default storage under `bug_reports/<report_id>/screenshot.<png|jpg|webp>`; the
retention policy (imagineer/ops/services/retention/) purges old reports with their files.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.ops.models import BugReport, BugReportStatus

# The client payload fields, large and only read on a report's own page: lists defer them.
PAYLOAD_BLOBS = ("environment", "client_meta", "app_state", "recent_logs", "network_events")

# Named as before the module moved into services/: LOG_LEVELS entries and log searches know it so.
logger = get_logger("imagineer.ops.bug_reports")

# --- Limits (docs/BUG_REPORTS.md lists them; the serializer applies the per-field ones) ----------
MAX_SCREENSHOT_BYTES = 10 * 1024 * 1024  # decoded
MAX_SCREENSHOT_PIXELS = 50_000_000  # an 8K screen at 1.5x; decided from the header, before decoding
# The whole JSON body: a base64 screenshot at its limit (~13.4 MB) plus logs and network events.
MAX_BODY_BYTES = 20 * 1024 * 1024
SCREENSHOT_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
SCREENSHOT_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}

# Header values a client may have captured that are credentials: stored as REDACTED, never as sent.
REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token", "x-csrftoken"}
)

_DATA_URL_PREFIX = re.compile(r"^data:[^,]{0,100};base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class InvalidBugReport(ImagineerError):
    """A field of the submission the serializer could not judge (the screenshot's bytes); 400
    in the same shape as a validation error: details.fields names the field."""

    code = "validation_error"

    def __init__(self, field: str, message: str):
        super().__init__(f"Invalid input: {field}: {message}", details={"fields": {field: [message]}})


class PayloadTooLarge(ImagineerError):
    status_code = 413
    code = "payload_too_large"


@dataclass(frozen=True)
class Screenshot:
    content: bytes
    format: str  # PNG, JPEG or WEBP
    width: int
    height: int

    @property
    def extension(self) -> str:
        return SCREENSHOT_FORMATS[self.format]


def check_body_size(content_length: int) -> None:
    """Refuse a submission whose declared body is over MAX_BODY_BYTES, before it is read."""
    if content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"The bug report is {content_length:,} bytes; the limit is {MAX_BODY_BYTES // (1024 * 1024)} MB "
            f"(a screenshot may be up to {MAX_SCREENSHOT_BYTES // (1024 * 1024)} MB before base64).",
            details={"max_bytes": MAX_BODY_BYTES},
        )


def decode_screenshot(value: str | None) -> Screenshot | None:
    """Base64 (optionally a `data:image/...;base64,` URL) → verified image bytes; None when absent.

    Refuses (InvalidBugReport naming `screenshot`): text that is not base64, more than
    MAX_SCREENSHOT_BYTES once decoded, anything that is not a PNG, JPEG or WebP image Pillow
    decodes completely, and images over MAX_SCREENSHOT_PIXELS.
    """
    if not value:
        return None
    text = _WHITESPACE.sub("", _DATA_URL_PREFIX.sub("", value.strip(), count=1))
    limit_mb = MAX_SCREENSHOT_BYTES // (1024 * 1024)
    # Four base64 characters carry three bytes: refuse an oversized one before decoding it.
    if len(text) > (MAX_SCREENSHOT_BYTES + 2) // 3 * 4:
        raise InvalidBugReport("screenshot", f"The screenshot is larger than the {limit_mb} MB limit.")
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBugReport(
            "screenshot", "Not valid base64; send the image's bytes base64-encoded, optionally as a data: URL."
        ) from exc
    if len(content) > MAX_SCREENSHOT_BYTES:
        raise InvalidBugReport("screenshot", f"The screenshot is larger than the {limit_mb} MB limit.")
    if not content:
        return None
    return _verify_image(content)


def _verify_image(content: bytes) -> Screenshot:
    accepted = "PNG, JPEG or WebP"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(content)) as img:
                fmt, (width, height) = img.format, img.size
                if fmt not in SCREENSHOT_FORMATS:
                    raise InvalidBugReport("screenshot", f"The screenshot is a {fmt} image; send {accepted}.")
                if width * height > MAX_SCREENSHOT_PIXELS:
                    raise InvalidBugReport(
                        "screenshot",
                        f"The screenshot is {width}x{height} pixels, over the {MAX_SCREENSHOT_PIXELS:,}-pixel limit.",
                    )
                img.verify()  # structure and checksums (PNG CRCs)
            with PILImage.open(io.BytesIO(content)) as img:
                img.load()  # every pixel: truncated and corrupt data fail here
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise InvalidBugReport("screenshot", "The screenshot declares too many pixels.") from exc
    except UnidentifiedImageError as exc:
        raise InvalidBugReport("screenshot", f"The decoded bytes are not an image; send {accepted}.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidBugReport("screenshot", "The screenshot is truncated or corrupt and cannot be decoded.") from exc
    return Screenshot(content=content, format=fmt, width=width, height=height)


def redact_headers(headers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The headers with the values of SECRET_HEADERS (any case) replaced by REDACTED."""
    return [
        {**header, "value": REDACTED} if str(header.get("name", "")).strip().lower() in SECRET_HEADERS else dict(header)
        for header in headers
    ]


def redact_network_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    redacted = []
    for event in events:
        event = dict(event)
        for key in ("requestHeaders", "responseHeaders"):
            if key in event:
                event[key] = redact_headers(event[key] or [])
        redacted.append(event)
    return redacted


def new_report_id(now: datetime | None = None) -> str:
    """`bug_<YYYYmmdd_HHMMSS UTC>_<12 hex>`: sortable by time, unguessable in its last part."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return f"bug_{stamp}_{secrets.token_hex(6)}"


def screenshot_name(report_id: str, extension: str) -> str:
    return f"bug_reports/{report_id}/screenshot.{extension}"


def submit_bug_report(user, data: Mapping[str, Any], *, request_id: str) -> BugReport:
    """Store a submission validated by BugReportSubmissionSerializer (snake_case keys).

    The screenshot is verified first (InvalidBugReport when it is refused), then written to
    storage and the row inserted; if anything fails after the file was written, it is removed.
    """
    screenshot = decode_screenshot(data.get("screenshot"))
    report_id = new_report_id()
    while BugReport.objects.filter(report_id=report_id).exists():  # 48 random bits a second: rare
        report_id = new_report_id()
    report = BugReport(
        report_id=report_id,
        description=data["description"],
        expected_behavior=data.get("expected_behavior") or "",
        actual_behavior=data.get("actual_behavior") or "",
        steps_to_reproduce=list(data.get("steps_to_reproduce") or []),
        environment=dict(data.get("environment") or {}),
        client_meta=dict(data.get("client_meta") or {}),
        app_state=dict(data.get("app_state") or {}),
        recent_logs=[dict(entry) for entry in data.get("recent_logs") or []],
        network_events=redact_network_events(data.get("network_events") or []),
        screenshot_error=data.get("screenshot_error") or "",
        request_id=(request_id or "")[:128],
        submitted_by=user if user is not None and user.is_authenticated else None,
    )
    written = ""
    try:
        with transaction.atomic():
            if screenshot is not None:
                written = default_storage.save(
                    screenshot_name(report_id, screenshot.extension), ContentFile(screenshot.content)
                )
                report.screenshot.name = written
            report.save(force_insert=True)
    except BaseException:
        if written:
            default_storage.delete(written)
        raise
    logger.info(
        "bug_report.submitted",
        report_id=report.report_id,
        bug_report_pk=report.pk,
        screenshot_bytes=len(screenshot.content) if screenshot else 0,
        recent_logs=len(report.recent_logs),
        network_events=len(report.network_events),
    )
    return report


def _check_status(status: str) -> str:
    if status not in BugReportStatus.values:
        raise ImagineerError(
            f"Unknown status {status!r}; use one of {', '.join(BugReportStatus.values)}.",
            code="invalid_status",
            details={"accepted": list(BugReportStatus.values)},
        )
    return status


def update_status(report: BugReport, *, status: str, notes: str | None = None, user=None) -> BugReport:
    """Move a report to `status`; `notes` (when given) replaces its resolution notes."""
    report.status = _check_status(status)
    fields = ["status", "updated_at"]
    if notes is not None:
        report.resolution_notes = notes
        fields.append("resolution_notes")
    report.save(update_fields=fields)
    logger.info(
        "bug_report.status_changed",
        report_id=report.report_id,
        status=report.status,
        user_id=getattr(user, "pk", None),
    )
    return report


def bulk_update_status(reports: QuerySet[BugReport], *, status: str, user=None) -> int:
    """Move every report of `reports` to `status` in one UPDATE; the number changed."""
    changed = reports.exclude(status=_check_status(status)).update(status=status, updated_at=timezone.now())
    logger.info("bug_report.bulk_status_changed", status=status, changed=changed, user_id=getattr(user, "pk", None))
    return changed


def delete_bug_reports(reports: QuerySet[BugReport]) -> int:
    """Delete the rows and, once that is committed, their screenshots; the number deleted."""
    names = [name for name in reports.values_list("screenshot", flat=True) if name]
    deleted, _ = reports.delete()
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names])
    return deleted
