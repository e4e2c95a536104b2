"""Bug reports submitted by admins from a client, with what the client saw."""

from django.conf import settings
from django.db import models


class BugReportStatus(models.TextChoices):
    OPEN = "open", "Open"
    TRIAGED = "triaged", "Triaged"
    RESOLVED = "resolved", "Resolved"
    WONT_FIX = "wont_fix", "Won't fix"


class BugReport(models.Model):
    report_id = models.CharField(
        max_length=64, unique=True, help_text="Public id, e.g. bug_20261201_120000_ab12cd34ef56."
    )
    description = models.TextField()
    expected_behavior = models.TextField(blank=True)
    actual_behavior = models.TextField(blank=True)
    steps_to_reproduce = models.JSONField(default=list, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    client_meta = models.JSONField(default=dict, blank=True)
    app_state = models.JSONField(default=dict, blank=True)
    recent_logs = models.JSONField(default=list, blank=True)
    network_events = models.JSONField(default=list, blank=True)
    screenshot = models.FileField(max_length=255, blank=True)
    screenshot_error = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=16, choices=BugReportStatus.choices, default=BugReportStatus.OPEN, db_index=True
    )
    resolution_notes = models.TextField(blank=True)
    # The request that submitted it, to find its log lines.
    request_id = models.CharField(max_length=128, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="bug_reports"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.report_id}: {self.description[:60]}"
