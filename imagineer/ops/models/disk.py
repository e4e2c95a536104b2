"""Disk usage snapshots and the alert state that makes an alert fire once per crossing."""

from django.db import models


class DiskSnapshot(models.Model):
    """One sample of every mount and monitored directory, taken by a background walk."""

    taken_at = models.DateTimeField(db_index=True)
    duration_seconds = models.FloatField(default=0)
    threshold_percent = models.FloatField()
    # [{"mount", "total_bytes", "used_bytes", "free_bytes", "percent_used"}]
    mounts = models.JSONField(default=list)
    # [{"label", "mount", "exists", "size_bytes", "file_count", "percent_of_mount", "complete"}]
    directories = models.JSONField(default=list)
    # [{"type": "capacity", "mount", "percent_used", "threshold_percent"}]
    alerts = models.JSONField(default=list)
    # False when the walk hit its time limit: sizes are lower bounds.
    complete = models.BooleanField(default=True)

    class Meta:
        ordering = ["-taken_at"]
        get_latest_by = "taken_at"

    def __str__(self) -> str:
        return f"Disk snapshot {self.taken_at:%Y-%m-%d %H:%M} UTC"


class DiskAlertState(models.Model):
    """Per mount: is it above the threshold now, and since when. An alert goes out on the way up only."""

    mount = models.CharField(max_length=255, unique=True, help_text="Mount label as shown in disk stats.")
    above_threshold = models.BooleanField(default=False)
    percent_used = models.FloatField(default=0)
    crossed_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.mount}: {'above' if self.above_threshold else 'below'} threshold"
