from generation.api.views import (
    DiffusionModelViewSet,
    GenerationJobViewSet,
    LoraViewSet,
    SetRunViewSet,
    SetTemplateViewSet,
)
from imagineer.core.routers import ApiRouter

router = ApiRouter()
router.register("generation/models", DiffusionModelViewSet, basename="diffusion-model")
router.register("generation/loras", LoraViewSet, basename="lora")
router.register("generation/jobs", GenerationJobViewSet, basename="generation-job")
router.register("generation/set-runs", SetRunViewSet, basename="set-run")
# albums/{id}/generate/: a set template starts a set run (albums imports nothing of generation).
router.register("albums", SetTemplateViewSet, basename="album")

urlpatterns = router.urls
