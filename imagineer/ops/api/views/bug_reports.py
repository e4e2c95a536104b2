"""Bug reports (admin): submit from a client, list, read, change status."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils import json

from imagineer.core.permissions import IsAdmin
from imagineer.core.ratelimits import enforce_rate_limit
from imagineer.core.request_context import current_request_id
from imagineer.ops.api.serializers.bug_reports import (
    BugReportDetailSerializer,
    BugReportListSerializer,
    BugReportStatusSerializer,
    BugReportSubmissionSerializer,
    BugReportSubmittedSerializer,
)
from imagineer.ops.models import BugReport
from imagineer.ops.services import bug_reports


def submit_rate() -> str:
    """Per admin (IMAGINEER_BUG_REPORT_RATE, default 30/h): a client in a loop stops here."""
    return settings.IMAGINEER_BUG_REPORT_RATE


class BugReportJSONParser(BaseParser):
    """JSON bodies up to bug_reports.MAX_BODY_BYTES.

    Deliberately not a JSONParser: DRF reads a JSONParser's body through HttpRequest.body, which
    applies DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, sized for forms and small JSON). A report with a
    screenshot is larger; it gets its own bound, checked from Content-Length in the view and here
    while reading.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = bug_reports.MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            bug_reports.check_body_size(len(raw))
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=json.strict_constant)
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from exc


class BugReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Bug reports with what the client saw: its logs, network events, state and a screenshot."""

    permission_classes = [IsAdmin]
    parser_classes = [BugReportJSONParser]
    queryset = BugReport.objects.select_related("submitted_by")
    lookup_field = "report_id"
    lookup_value_regex = r"[A-Za-z0-9_.-]+"
    filterset_fields = ["status"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            # A report's client payload can be megabytes: a page of the list loads none of it.
            queryset = queryset.defer(*bug_reports.PAYLOAD_BLOBS)
        return queryset

    def get_serializer_class(self):
        return BugReportListSerializer if self.action == "list" else BugReportDetailSerializer

    @extend_schema(
        request=BugReportSubmissionSerializer,
        responses={
            201: BugReportSubmittedSerializer,
            400: OpenApiResponse(description="Invalid payload; error.details.fields names the field"),
            413: OpenApiResponse(description="Body over 20 MB"),
            429: OpenApiResponse(description="Over the per-admin submission rate"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Submit a bug report (admin). Stored with the request's id (X-Request-ID) and the submitter."""
        enforce_rate_limit(request, group="ops.bug_reports.submit", rate=submit_rate())
        bug_reports.check_body_size(int(request.META.get("CONTENT_LENGTH") or 0))
        serializer = BugReportSubmissionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = bug_reports.submit_bug_report(
            request.user,
            serializer.validated_data,
            request_id=getattr(request, "request_id", "") or current_request_id(),
        )
        return Response(BugReportSubmittedSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BugReportStatusSerializer, responses=BugReportDetailSerializer)
    def partial_update(self, request, *args, **kwargs):
        """Change a report's status (open, triaged, resolved, wont_fix) and its resolution notes."""
        report = self.get_object()
        serializer = BugReportStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = bug_reports.update_status(
            report, status=data["status"], notes=data.get("resolution_notes"), user=request.user
        )
        return Response(BugReportDetailSerializer(report).data)
