from imagineer.core.routers import ApiRouter
from training.api.scrapes import ScrapeJobViewSet

router = ApiRouter()
router.register("training/scrapes", ScrapeJobViewSet, basename="scrape-job")

urlpatterns = router.urls
