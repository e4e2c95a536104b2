"""Disk usage: what is watched, a bounded walk of each directory, mounts, snapshots and alerts.

A snapshot (`take_snapshot`, beat task every 6 h and "take snapshot now") measures:
- every mount that holds a monitored directory: total/used/free/percent from os.statvfs, grouped by
  st_dev, so two directories on one disk make one mount;
- every monitored directory: apparent size (st_size, like `du -sb`) and file count from an
  os.scandir walk that never follows a symlink, never leaves the directory's filesystem, counts a
  hard-linked file once, skips what it may not read or what vanishes mid-walk, and stops at a deadline
  (runtime config disk.scan_time_limit_seconds) — a stopped walk marks the snapshot incomplete and its
  sizes are lower bounds.
The endpoint serves the latest stored snapshot (`latest_disk_stats`), so a request never walks a tree.

Nothing here stores or returns a filesystem path: directories are named by label, and a mount by the
label of the first monitored directory on it (a stable order: media subfolders first).

Alerts: a mount at or above the threshold (disk.alert_threshold_percent, default 85) is "above". An
alert (one e-mail, one Slack-compatible webhook POST) goes out when a mount becomes above, not on each
sample while it stays there. It re-arms once the mount drops REARM_MARGIN_PERCENT points below the
threshold, so a disk wobbling around 85% does not alert on every sample. When no channel delivered,
the alert is tried again on the next sample.

Modules:
- `walk`: the bounded os.scandir walk of one directory tree (`measure_tree`).
- `snapshots`: monitored directories, mounts, taking a snapshot, serving the latest, queueing one.
- `alerts`: each mount's alert state, the alert e-mail and the webhook.
"""

from imagineer.ops.services.disk.alerts import REARM_MARGIN_PERCENT, alert_message, alert_recipients
from imagineer.ops.services.disk.snapshots import (
    DEFAULT_SCHEDULE_SECONDS,
    MEDIA_SUBFOLDERS,
    REFRESH_DEDUPE_SECONDS,
    SCRAPED_LABEL,
    SNAPSHOT_TASK,
    STALE_AFTER_SCHEDULES,
    MonitoredDirectory,
    latest_disk_stats,
    monitored_directories,
    mount_usage,
    request_snapshot,
    scan_budget_seconds,
    schedule_seconds,
    take_snapshot,
)
from imagineer.ops.services.disk.walk import TreeUsage, measure_tree

__all__ = [
    "DEFAULT_SCHEDULE_SECONDS",
    "MEDIA_SUBFOLDERS",
    "REARM_MARGIN_PERCENT",
    "REFRESH_DEDUPE_SECONDS",
    "SCRAPED_LABEL",
    "SNAPSHOT_TASK",
    "STALE_AFTER_SCHEDULES",
    "MonitoredDirectory",
    "TreeUsage",
    "alert_message",
    "alert_recipients",
    "latest_disk_stats",
    "measure_tree",
    "monitored_directories",
    "mount_usage",
    "request_snapshot",
    "scan_budget_seconds",
    "schedule_seconds",
    "take_snapshot",
]
