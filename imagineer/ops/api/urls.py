"""Operations API (included under /api/): runtime config and disk stats (admin), bug reports.

/api/admin/config, /api/admin/config/cache, /api/admin/config/reload, /api/admin/disk-stats,
/api/admin/disk-stats/refresh, /api/admin/purge-runs[/<id>] and /api/bug-reports[/<report_id>]
(trailing slash optional).
"""

from django.urls import re_path

from imagineer.core.routers import ApiRouter
from imagineer.ops.api.views import config, disk
from imagineer.ops.api.views.bug_reports import BugReportViewSet
from imagineer.ops.api.views.retention import PurgeRunViewSet

router = ApiRouter()
router.register("bug-reports", BugReportViewSet, basename="bug-report")
router.register("admin/purge-runs", PurgeRunViewSet, basename="purge-run")

urlpatterns = [
    re_path(r"^admin/config/?$", config.ConfigView.as_view(), name="admin-config"),
    re_path(r"^admin/config/cache/?$", config.ConfigCacheView.as_view(), name="admin-config-cache"),
    re_path(r"^admin/config/reload/?$", config.ConfigReloadView.as_view(), name="admin-config-reload"),
    re_path(r"^admin/disk-stats/?$", disk.DiskStatsView.as_view(), name="admin-disk-stats"),
    re_path(r"^admin/disk-stats/refresh/?$", disk.DiskStatsRefreshView.as_view(), name="admin-disk-stats-refresh"),
    *router.urls,
]
