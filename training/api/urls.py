"""Training API: /api/training/runs/ and /api/training/scrapes/ (included under /api/)."""

from imagineer.core.routers import ApiRouter
from training.api.views.runs import TrainingRunViewSet
from training.api.views.scrapes import ScrapeJobViewSet

router = ApiRouter()
router.register("training/runs", TrainingRunViewSet, basename="training-run")
router.register("training/scrapes", ScrapeJobViewSet, basename="scrape-job")

urlpatterns = router.urls
