"""Operations models, one module per idea (each grows on its own)."""

from imagineer.ops.models.bug_reports import BugReport, BugReportStatus
from imagineer.ops.models.disk import DiskAlertState, DiskSnapshot
from imagineer.ops.models.retention import PurgeRun, RetentionPolicy, RetentionTarget

__all__ = [
    "BugReport",
    "BugReportStatus",
    "DiskAlertState",
    "DiskSnapshot",
    "PurgeRun",
    "RetentionPolicy",
    "RetentionTarget",
]
