"""The operations console: one module per area, registered on import."""

from imagineer.ops.admin import bug_reports, config, disk, retention  # noqa: F401
