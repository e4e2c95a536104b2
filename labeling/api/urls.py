from django.urls import re_path

from imagineer.core.routers import ApiRouter
from labeling.api.views import (
    AlbumLabelingAnalyticsView,
    AlbumLabelView,
    ImageLabelRunView,
    ImageLabelViewSet,
    LabelDistributionView,
    LabelingRunViewSet,
    LabelStatsView,
    TopTagsView,
)

router = ApiRouter()
router.register(r"images/(?P<image_pk>\d+)/labels", ImageLabelViewSet, basename="image-label")
router.register("labeling/runs", LabelingRunViewSet, basename="labeling-run")

urlpatterns = [
    re_path(r"^albums/(?P<album_pk>\d+)/label/?$", AlbumLabelView.as_view(), name="album-label"),
    re_path(r"^images/(?P<image_pk>\d+)/label/?$", ImageLabelRunView.as_view(), name="image-label-run"),
    re_path(
        r"^albums/(?P<album_pk>\d+)/labeling/analytics/?$",
        AlbumLabelingAnalyticsView.as_view(),
        name="album-labeling-analytics",
    ),
    re_path(r"^labels/stats/?$", LabelStatsView.as_view(), name="label-stats"),
    re_path(r"^labels/top-tags/?$", TopTagsView.as_view(), name="label-top-tags"),
    re_path(r"^labels/distribution/?$", LabelDistributionView.as_view(), name="label-distribution"),
    *router.urls,
]
