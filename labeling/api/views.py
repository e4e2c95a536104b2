"""Labeling API views: an image's labels, labeling runs, and the label analytics.

Labels and runs:
GET/POST /api/images/{image_pk}/labels, PATCH/DELETE .../{id}   read: who may see the image; write: admin
POST /api/albums/{album_pk}/label, /api/images/{image_pk}/label  admin: start a labeling run
/api/labeling/runs/                                             admin: runs, cancel, retry

Analytics (parse and authorise, call one function of labeling.analytics):
GET /api/albums/{album_pk}/labeling/analytics   admin: one album's labeling progress
GET /api/labels/stats                           everyone, scoped to the images they may see
GET /api/labels/top-tags                        everyone, scoped
GET /api/labels/distribution                    everyone, scoped
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from albums.models import Album, Image
from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from imagineer.core.responses import accepted, accepted_schema
from labeling import analytics, services
from labeling.api.serializers import (
    AlbumLabelingAnalyticsSerializer,
    LabelAnalyticsQuerySerializer,
    LabelDistributionSerializer,
    LabelingRunSerializer,
    LabelingStartSerializer,
    LabelSerializer,
    LabelStatsSerializer,
    LabelWriteSerializer,
    TopTagsSerializer,
)
from labeling.models import Label, LabelingRun

DUPLICATE_LABEL = OpenApiResponse(
    description="duplicate_label: the image has this (type, text) already (details.label_id)."
)


class ImageLabelViewSet(viewsets.ModelViewSet):
    """An image's labels: anyone who may see the image reads them; admins write."""

    serializer_class = LabelSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _image(self) -> Image:
        if not hasattr(self, "_cached_image"):
            visible = Image.objects.visible_to(self.request.user)
            self._cached_image = get_object_or_404(visible, pk=self.kwargs["image_pk"])
        return self._cached_image

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Label.objects.none()
        return self._image().labels.select_related("created_by").order_by("label_type", "id")

    @extend_schema(request=LabelWriteSerializer, responses={201: LabelSerializer, 409: DUPLICATE_LABEL})
    def create(self, request, *args, **kwargs):
        """Add a person's label (admin): label_type manual (default), caption or tag."""
        serializer = LabelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        label = services.create_manual_label(self._image(), user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LabelWriteSerializer, responses={200: LabelSerializer, 409: DUPLICATE_LABEL})
    def partial_update(self, request, *args, **kwargs):
        """Edit a label (admin). An edited machine label becomes a manual one."""
        label = self.get_object()
        serializer = LabelWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        label = services.update_label(label, user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(label).data)


def _start_run(request, **target) -> Response:
    serializer = LabelingStartSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    run = services.start_labeling_run(user=request.user, **target, **serializer.validated_data)
    return accepted(run, LabelingRunSerializer, request)


class AlbumLabelView(APIView):
    permission_classes = [IsAdmin]

    @accepted_schema(LabelingRunSerializer, request=LabelingStartSerializer)
    def post(self, request, album_pk: int):
        """Label the album's images (admin) → 202 with the run; follow it at /api/labeling/runs/{id}/."""
        return _start_run(request, album=get_object_or_404(Album.objects.all(), pk=album_pk))


class ImageLabelRunView(APIView):
    permission_classes = [IsAdmin]

    @accepted_schema(LabelingRunSerializer, request=LabelingStartSerializer)
    def post(self, request, image_pk: int):
        """Label one image (admin) → 202 with the run."""
        return _start_run(request, image_ids=[get_object_or_404(Image.objects.all(), pk=image_pk).pk])


class LabelingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Labeling runs (admin): progress, per-image failures, token usage; cancel and retry."""

    serializer_class = LabelingRunSerializer
    permission_classes = [IsAdmin]
    queryset = LabelingRun.objects.all()
    filterset_fields = ["status", "labeler", "album"]

    @extend_schema(request=None, responses=LabelingRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued run at once, a running one after the image it is on."""
        return Response(self.get_serializer(jobs.cancel_job(self.get_object())).data)

    @accepted_schema(LabelingRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again (its images, counters reset)."""
        return accepted(jobs.retry_job(self.get_object()), LabelingRunSerializer, request)


# --- label analytics ---------------------------------------------------------------------

_SCOPE = (
    "Admins aggregate over every image. Everyone else (anonymous or signed in) over public, non-NSFW "
    "images only: the same figures for every non-admin (a user's own private images are not counted)."
)
_FILTER_ERRORS = OpenApiResponse(description="validation_error: bad label_type, album, limit or offset.")


def _parse_filters(request) -> analytics.LabelFilters:
    query = LabelAnalyticsQuerySerializer(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    return query.filters()


class AlbumLabelingAnalyticsView(APIView):
    """One album's labeling progress over all its images (admin)."""

    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="album_labeling_analytics",
        parameters=[OpenApiParameter("album_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="Album id.")],
        responses={
            200: OpenApiResponse(AlbumLabelingAnalyticsSerializer, "Counts, coverage and top tags of the album."),
            404: OpenApiResponse(description="No album with this id."),
        },
    )
    def get(self, request, album_pk: int):
        """Labels by type, coverage, top tags, NSFW count and last labeling time of one album."""
        return Response(analytics.album_labeling_analytics(int(album_pk)))


class LabelStatsView(APIView):
    permission_classes = [AllowAny]  # reads are open; what they cover is scoped to the caller

    @extend_schema(
        operation_id="label_stats",
        description=_SCOPE,
        parameters=[LabelAnalyticsQuerySerializer],
        responses={200: OpenApiResponse(LabelStatsSerializer, "Label totals in scope."), 400: _FILTER_ERRORS},
    )
    def get(self, request):
        """Label totals, per-image spread, coverage, top tags and counts by type."""
        return Response(analytics.label_stats(request.user, _parse_filters(request)))


class TopTagsView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="label_top_tags",
        description=_SCOPE + " Tags are labels of type tag or manual; paginated by limit/offset.",
        parameters=[LabelAnalyticsQuerySerializer],
        responses={200: OpenApiResponse(TopTagsSerializer, "One page of tags by count."), 400: _FILTER_ERRORS},
    )
    def get(self, request):
        """Tags by count (count desc, then tag), one page."""
        return Response(analytics.top_tags(request.user, _parse_filters(request)))


class LabelDistributionView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="label_distribution",
        description=_SCOPE + " Albums are the ones you may see, in id order, paginated by limit/offset.",
        parameters=[LabelAnalyticsQuerySerializer],
        responses={
            200: OpenApiResponse(LabelDistributionSerializer, "Labels by type, per image, per album."),
            400: _FILTER_ERRORS,
        },
    )
    def get(self, request):
        """Labels by type, a labels-per-image histogram, and a page of albums with their coverage."""
        return Response(analytics.label_distribution(request.user, _parse_filters(request)))
