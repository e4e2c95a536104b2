from django.urls import re_path

from imagineer.core.routers import ApiRouter
from labeling.api import analytics_views
from labeling.api.views import AlbumLabelView, ImageLabelRunView, ImageLabelViewSet, LabelingRunViewSet

router = ApiRouter()
router.register(r"images/(?P<image_pk>\d+)/labels", ImageLabelViewSet, basename="image-label")
router.register("labeling/runs", LabelingRunViewSet, basename="labeling-run")

urlpatterns = [
    re_path(r"^albums/(?P<album_pk>\d+)/label/?$", AlbumLabelView.as_view(), name="album-label"),
    re_path(r"^images/(?P<image_pk>\d+)/label/?$", ImageLabelRunView.as_view(), name="image-label-run"),
    re_path(
        r"^albums/(?P<album_pk>\d+)/labeling/analytics/?$",
        analytics_views.AlbumLabelingAnalyticsView.as_view(),
        name="album-labeling-analytics",
    ),
    re_path(r"^labels/stats/?$", analytics_views.LabelStatsView.as_view(), name="label-stats"),
    re_path(r"^labels/top-tags/?$", analytics_views.TopTagsView.as_view(), name="label-top-tags"),
    re_path(r"^labels/distribution/?$", analytics_views.LabelDistributionView.as_view(), name="label-distribution"),
    *router.urls,
]
