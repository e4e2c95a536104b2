from imagineer.core.routers import ApiRouter
from training.api.runs import TrainingRunViewSet

router = ApiRouter()
router.register("training/runs", TrainingRunViewSet, basename="training-run")

urlpatterns = router.urls
