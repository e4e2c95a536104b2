"""URLs of the bug report API: /api/bug-reports and /api/bug-reports/<report_id> (slash optional)."""

from imagineer.core.routers import ApiRouter
from imagineer.ops.api.bug_report_views import BugReportViewSet

router = ApiRouter()
router.register("bug-reports", BugReportViewSet, basename="bug-report")

urlpatterns = router.urls
