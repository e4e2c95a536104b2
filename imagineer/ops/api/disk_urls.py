"""URLs of the disk API (included under /api/)."""

from django.urls import re_path

from imagineer.ops.api.disk_views import DiskStatsRefreshView, DiskStatsView

urlpatterns = [
    re_path(r"^admin/disk-stats/?$", DiskStatsView.as_view(), name="admin-disk-stats"),
    re_path(r"^admin/disk-stats/refresh/?$", DiskStatsRefreshView.as_view(), name="admin-disk-stats-refresh"),
]
