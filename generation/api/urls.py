from generation.api.views import DiffusionModelViewSet, GenerationJobViewSet, LoraViewSet, SetRunViewSet
from imagineer.core.routers import ApiRouter

router = ApiRouter()
router.register("generation/models", DiffusionModelViewSet, basename="diffusion-model")
router.register("generation/loras", LoraViewSet, basename="lora")
router.register("generation/jobs", GenerationJobViewSet, basename="generation-job")
router.register("generation/set-runs", SetRunViewSet, basename="set-run")

urlpatterns = router.urls
