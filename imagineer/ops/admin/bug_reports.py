"""The bug report console: triage what clients sent, with their screenshot, logs and network events.

What the client sent is read-only; an operator changes the status and the resolution notes (one
report on its page, many through the actions), all through imagineer.ops.services.bug_reports. The
screenshot is streamed from storage by an admin-only view: media files have no public URL.
"""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from imagineer.ops.models import BugReport, BugReportStatus
from imagineer.ops.services import bug_reports

PAYLOAD_FIELDS = [
    "report_id",
    "submitted_by",
    "request_id",
    "created_at",
    "updated_at",
    "description",
    "expected_behavior",
    "actual_behavior",
    "steps_list",
    "screenshot_preview",
    "screenshot_error",
    "environment_json",
    "client_meta_json",
    "app_state_json",
    "recent_logs_json",
    "network_events_json",
]


def pretty_json(value) -> str:
    if value in (None, {}, []):
        return "-"
    return format_html(
        '<pre style="white-space:pre-wrap;max-height:40em;overflow:auto;margin:0">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False),
    )


@admin.register(BugReport)
class BugReportAdmin(admin.ModelAdmin):
    list_display = ["report_id", "status", "submitted_by", "created_at", "description_excerpt", "has_screenshot"]
    list_display_links = ["report_id"]
    list_filter = ["status", "created_at", ("submitted_by", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["submitted_by"]
    search_fields = ["report_id", "description", "request_id", "submitted_by__username", "submitted_by__email"]
    search_help_text = "Report id, description, request id, or the submitter's username or email."
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "ops_bugreport_changelist":
            queryset = queryset.defer(*bug_reports.PAYLOAD_BLOBS)  # megabytes per report, unused in the list
        return queryset

    actions = ["mark_triaged", "mark_resolved", "mark_wont_fix"]  # and the site-wide delete
    readonly_fields = PAYLOAD_FIELDS
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "report_id",
                    "status",
                    "resolution_notes",
                    "submitted_by",
                    "request_id",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
        ("Report", {"fields": ["description", "expected_behavior", "actual_behavior", "steps_list"]}),
        ("Screenshot", {"fields": ["screenshot_preview", "screenshot_error"]}),
        ("Client", {"fields": ["environment_json", "client_meta_json", "app_state_json"]}),
        ("Recent logs", {"classes": ["collapse"], "fields": ["recent_logs_json"]}),
        ("Network events", {"classes": ["collapse"], "fields": ["network_events_json"]}),
    ]

    def has_add_permission(self, request):
        return False  # reports come from clients (POST /api/bug-reports)

    # --- Columns and read-only fields -----------------------------------------------------------

    @admin.display(description="Description")
    def description_excerpt(self, obj):
        return Truncator(obj.description).chars(80)

    @admin.display(description="Screenshot", boolean=True)
    def has_screenshot(self, obj):
        return bool(obj.screenshot.name)

    @admin.display(description="Steps to reproduce")
    def steps_list(self, obj):
        if not obj.steps_to_reproduce:
            return "-"
        return format_html(
            "<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((step,) for step in obj.steps_to_reproduce))
        )

    @admin.display(description="Screenshot")
    def screenshot_preview(self, obj):
        if not obj.screenshot.name:
            return "None"
        url = reverse("admin:ops_bugreport_screenshot", args=[obj.pk])
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="Screenshot of {}" '
            'style="max-width:100%;max-height:40em;border:1px solid #ccc"></a>',
            url,
            url,
            obj.report_id,
        )

    @admin.display(description="Environment")
    def environment_json(self, obj):
        return pretty_json(obj.environment)

    @admin.display(description="Client metadata")
    def client_meta_json(self, obj):
        return pretty_json(obj.client_meta)

    @admin.display(description="App state")
    def app_state_json(self, obj):
        return pretty_json(obj.app_state)

    @admin.display(description="Recent logs")
    def recent_logs_json(self, obj):
        return pretty_json(obj.recent_logs)

    @admin.display(description="Network events")
    def network_events_json(self, obj):
        return pretty_json(obj.network_events)

    # --- Writes through the service -------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        bug_reports.update_status(
            obj, status=form.cleaned_data["status"], notes=form.cleaned_data["resolution_notes"], user=request.user
        )

    def delete_model(self, request, obj):
        bug_reports.delete_bug_reports(BugReport.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        bug_reports.delete_bug_reports(queryset)

    def _mark(self, request, queryset, status: BugReportStatus):
        changed = bug_reports.bulk_update_status(queryset, status=status, user=request.user)
        self.message_user(request, f"Marked {changed} report(s) {status.label.lower()}.", messages.SUCCESS)

    @admin.action(description="Mark selected reports triaged", permissions=["change"])
    def mark_triaged(self, request, queryset):
        self._mark(request, queryset, BugReportStatus.TRIAGED)

    @admin.action(description="Mark selected reports resolved", permissions=["change"])
    def mark_resolved(self, request, queryset):
        self._mark(request, queryset, BugReportStatus.RESOLVED)

    @admin.action(description="Mark selected reports won't fix", permissions=["change"])
    def mark_wont_fix(self, request, queryset):
        self._mark(request, queryset, BugReportStatus.WONT_FIX)

    # --- The screenshot -------------------------------------------------------------------------

    def get_urls(self):
        screenshot = path(
            "<path:object_id>/screenshot/",
            self.admin_site.admin_view(self.screenshot_view),
            name="ops_bugreport_screenshot",
        )
        return [screenshot, *super().get_urls()]

    def screenshot_view(self, request, object_id):
        """The report's screenshot, streamed from storage to someone who may view the report."""
        report = self.get_object(request, unquote(object_id))
        if report is None:
            raise Http404("No such bug report.")
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        name = report.screenshot.name
        if not name:
            raise Http404("This report has no screenshot.")
        try:
            handle = default_storage.open(name, "rb")
        except FileNotFoundError as exc:
            raise Http404("The screenshot is missing from storage.") from exc
        extension = name.rsplit(".", 1)[-1].lower()
        content_type = bug_reports.SCREENSHOT_CONTENT_TYPES.get(extension, "application/octet-stream")
        response = FileResponse(handle, content_type=content_type)
        response["Content-Disposition"] = f'inline; filename="{report.report_id}.{extension}"'
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response
