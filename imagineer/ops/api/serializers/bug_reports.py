"""Bug report payloads: the submission as the earlier clients send it (camelCase), and what the
API answers (snake_case, like every other response).

Every object refuses keys it does not know, at the top level and inside; strings must be JSON
strings (a number is not silently turned into one); every list and text has a bound
(docs/BUG_REPORTS.md). The screenshot's bytes are judged by imagineer.ops.services.bug_reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from imagineer.core.serializers import StrictSerializer
from imagineer.ops.models import BugReport, BugReportStatus

DESCRIPTION_MAX = 10_000
BEHAVIOR_MAX = 10_000
STEPS_MAX = 50
STEP_MAX = 2_000
RECENT_LOGS_MAX = 200
NETWORK_EVENTS_MAX = 50
HEADERS_MAX = 100
LOG_MESSAGE_MAX = 10_000
LOG_ARGS_MAX_CHARS = 20_000  # args and serializedArgs of one log entry, each, as JSON
BODY_MAX_CHARS = 64 * 1024  # requestBody and responseBody of one network event, each, as JSON
APP_STATE_MAX_CHARS = 256 * 1024
URL_MAX = 4_096
SCREENSHOT_ERROR_MAX = 500  # BugReport.screenshot_error
RESOLUTION_NOTES_MAX = 10_000

JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in JSON_TYPES.items() if isinstance(value, kind)), type(value).__name__)


class StrictCharField(serializers.CharField):
    """A JSON string only: 12 or true is refused rather than stored as "12" or "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def text(max_length: int, *, required: bool = False, allow_blank: bool = True, **kwargs) -> StrictCharField:
    if not required:
        kwargs.setdefault("allow_null", True)
    return StrictCharField(
        max_length=max_length, required=required, allow_blank=allow_blank, trim_whitespace=False, **kwargs
    )


@extend_schema_field({"oneOf": [{"type": "string", "maxLength": 128}, {"type": "number"}]})
class StringOrNumberField(serializers.Field):
    """Timestamps and event ids: clients send ISO strings or epoch milliseconds, kept as sent."""

    default_error_messages = {"invalid": "Expected a string or a number, got {kind}."}

    def __init__(self, *, max_length: int = 128, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid", kind=json_type(data))
        if isinstance(data, str) and len(data) > self.max_length:
            raise serializers.ValidationError(f"Ensure this field has no more than {self.max_length} characters.")
        return data

    def to_representation(self, value):
        return value


class BoundedJSONField(serializers.JSONField):
    """Any JSON value (or only an object / an array), at most `max_chars` once serialised."""

    def __init__(self, *, max_chars: int, kind: type | None = None, **kwargs):
        self.max_chars, self.kind = max_chars, kind
        super().__init__(**kwargs)
        if kind is not None:
            # The schema says object / array rather than "any value".
            extend_schema_field({"type": "array", "items": {}} if kind is list else {"type": "object"})(self)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if self.kind is not None and not isinstance(data, self.kind):
            raise serializers.ValidationError(f"Expected a JSON {JSON_TYPES[self.kind]}, got {json_type(data)}.")
        size = len(json.dumps(data, ensure_ascii=False))
        if size > self.max_chars:
            raise serializers.ValidationError(
                f"Too large: {size:,} characters as JSON; the limit is {self.max_chars:,}."
            )
        return data


# --- The submission ----------------------------------------------------------------------------


class PayloadObjectSerializer(StrictSerializer):
    """A JSON object of the payload; the error for anything else says what was sent, in JSON terms."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got a JSON {json_type(data)}."]}
            )
        return super().to_internal_value(data)


class BugReportEnvironmentSerializer(PayloadObjectSerializer):
    """The client's build: mode is required."""

    mode = text(64, required=True, allow_blank=False, help_text="e.g. production, development.")
    appVersion = text(128)  # the client's key names, camelCase
    gitSha = text(64)
    buildTime = text(64)


class BugReportViewportSerializer(PayloadObjectSerializer):
    """The window's size in CSS pixels."""

    width = serializers.IntegerField(min_value=0, max_value=100_000)
    height = serializers.IntegerField(min_value=0, max_value=100_000)


class BugReportClientMetaSerializer(PayloadObjectSerializer):
    """Where the client was: locationHref is required."""

    locationHref = text(URL_MAX, required=True, allow_blank=False)
    userAgent = text(1_000)
    platform = text(128)
    language = text(64)
    locale = text(64)
    timezone = text(64)
    viewport = BugReportViewportSerializer(required=False, allow_null=True)


class BugReportLogEntrySerializer(PayloadObjectSerializer):
    """One console entry the client captured."""

    level = text(32, required=True, allow_blank=False)
    message = text(LOG_MESSAGE_MAX, required=True)
    args = BoundedJSONField(max_chars=LOG_ARGS_MAX_CHARS, kind=list)
    timestamp = StringOrNumberField()
    serializedArgs = BoundedJSONField(max_chars=LOG_ARGS_MAX_CHARS)


class BugReportHeaderSerializer(PayloadObjectSerializer):
    """One HTTP header; secret ones are stored as [REDACTED]."""

    name = text(256, required=True, allow_blank=False)
    value = text(8_192, required=True, allow_null=False)


def headers_field() -> serializers.ListField:
    return serializers.ListField(child=BugReportHeaderSerializer(), max_length=HEADERS_MAX)


class BugReportNetworkEventSerializer(PayloadObjectSerializer):
    """One request the client made; the optional keys once it completed."""

    id = StringOrNumberField()
    method = text(16, required=True, allow_blank=False)
    url = text(URL_MAX, required=True, allow_blank=False)
    started_at = StringOrNumberField()
    requestHeaders = headers_field()
    responseHeaders = headers_field()
    completed_at = StringOrNumberField(required=False, allow_null=True)
    duration_ms = serializers.FloatField(required=False, allow_null=True, min_value=0)
    status = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=999)
    ok = serializers.BooleanField(required=False, allow_null=True)
    trace_id = text(128)
    requestBody = BoundedJSONField(max_chars=BODY_MAX_CHARS, required=False, allow_null=True)
    responseBody = BoundedJSONField(max_chars=BODY_MAX_CHARS, required=False, allow_null=True)
    error = text(2_000)

    def to_internal_value(self, data):
        # BooleanField would take "yes" or 1 for ok: JSON clients send true/false.
        if isinstance(data, Mapping) and data.get("ok") is not None and not isinstance(data["ok"], bool):
            raise serializers.ValidationError({"ok": [f"Expected true, false or null, got {json_type(data['ok'])}."]})
        return super().to_internal_value(data)


class BugReportSubmissionSerializer(StrictSerializer):
    """POST /api/bug-reports. Keys as the earlier clients send them; expected_behavior and
    actual_behavior are accepted for expectedBehavior and actualBehavior."""

    SNAKE_ALIASES = {"expected_behavior": "expectedBehavior", "actual_behavior": "actualBehavior"}

    description = StrictCharField(max_length=DESCRIPTION_MAX, help_text="What went wrong (required).")
    expectedBehavior = text(BEHAVIOR_MAX, source="expected_behavior")
    actualBehavior = text(BEHAVIOR_MAX, source="actual_behavior")
    stepsToReproduce = serializers.ListField(
        child=StrictCharField(max_length=STEP_MAX, allow_blank=True, trim_whitespace=True),
        max_length=STEPS_MAX,
        required=False,
        allow_null=True,
        source="steps_to_reproduce",
    )
    environment = BugReportEnvironmentSerializer(required=False)
    clientMeta = BugReportClientMetaSerializer(required=False, source="client_meta")
    appState = BoundedJSONField(max_chars=APP_STATE_MAX_CHARS, kind=dict, required=False, source="app_state")
    recentLogs = serializers.ListField(
        child=BugReportLogEntrySerializer(), max_length=RECENT_LOGS_MAX, required=False, source="recent_logs"
    )
    networkEvents = serializers.ListField(
        child=BugReportNetworkEventSerializer(),
        max_length=NETWORK_EVENTS_MAX,
        required=False,
        source="network_events",
    )
    screenshot = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        help_text="PNG, JPEG or WebP, base64, optionally as a data: URL; at most 10 MB decoded.",
    )
    screenshotError = text(SCREENSHOT_ERROR_MAX, source="screenshot_error", help_text="Why the client has none.")

    def run_validation(self, data=serializers.empty):
        if data is None or data is serializers.empty:  # a `null` body
            raise serializers.ValidationError(
                {"non_field_errors": ["The request body is required: a JSON object with at least a description."]}
            )
        return super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"The request body must be a JSON object, not a JSON {json_type(data)}."]}
            )
        data = dict(data)
        for snake, camel in self.SNAKE_ALIASES.items():
            if snake in data:
                if camel in data:
                    raise serializers.ValidationError({snake: [f"Send {camel} or {snake}, not both."]})
                data[camel] = data.pop(snake)
        return super().to_internal_value(data)

    def validate(self, attrs):
        steps = attrs.get("steps_to_reproduce")
        attrs["steps_to_reproduce"] = [step for step in steps or [] if step]
        return attrs


# --- Responses and the status change -----------------------------------------------------------


class BugReportSubmittedSerializer(serializers.ModelSerializer):
    trace_id = serializers.CharField(source="request_id", help_text="The submitting request's id (X-Request-ID).")
    stored_at = serializers.DateTimeField(source="created_at")
    has_screenshot = serializers.SerializerMethodField()

    class Meta:
        model = BugReport
        fields = ["report_id", "trace_id", "stored_at", "status", "has_screenshot"]
        read_only_fields = fields

    def get_has_screenshot(self, obj) -> bool:
        return bool(obj.screenshot.name)


class BugReportListSerializer(BugReportSubmittedSerializer):
    submitted_by = serializers.SerializerMethodField()

    class Meta(BugReportSubmittedSerializer.Meta):
        fields = [
            "report_id",
            "status",
            "description",
            "submitted_by",
            "trace_id",
            "has_screenshot",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_submitted_by(self, obj) -> str | None:
        return obj.submitted_by.get_username() if obj.submitted_by_id else None


class BugReportDetailSerializer(BugReportListSerializer):
    class Meta(BugReportListSerializer.Meta):
        fields = [
            *BugReportListSerializer.Meta.fields,
            "resolution_notes",
            "expected_behavior",
            "actual_behavior",
            "steps_to_reproduce",
            "environment",
            "client_meta",
            "app_state",
            "recent_logs",
            "network_events",
            "screenshot_error",
        ]
        read_only_fields = fields


class BugReportStatusSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=BugReportStatus.choices)
    resolution_notes = StrictCharField(
        max_length=RESOLUTION_NOTES_MAX, required=False, allow_blank=True, trim_whitespace=False
    )
