"""The legacy import API (included under /api/): /api/admin/import-runs/ (admin, read-only)."""

from imagineer.core.routers import ApiRouter
from legacy.api.views import ImportRunViewSet

router = ApiRouter()
router.register("admin/import-runs", ImportRunViewSet, basename="import-run")

urlpatterns = router.urls
