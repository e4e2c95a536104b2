"""The albums API's routes: images, albums, thumbnail jobs."""

from albums.api.views import AlbumViewSet, ImageViewSet, ThumbnailJobViewSet
from imagineer.core.routers import ApiRouter

router = ApiRouter()
router.register("images", ImageViewSet, basename="image")
router.register("albums", AlbumViewSet, basename="album")
router.register("jobs/thumbnails", ThumbnailJobViewSet, basename="thumbnail-job")

urlpatterns = router.urls
