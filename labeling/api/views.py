from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from albums.models import Album, Image
from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from labeling import services
from labeling.api.serializers import (
    LabelingRunSerializer,
    LabelingStartSerializer,
    LabelSerializer,
    LabelWriteSerializer,
)
from labeling.models import Label, LabelingRun


class ImageLabelViewSet(viewsets.ModelViewSet):
    """An image's labels: anyone who may see the image reads them; admins write."""

    serializer_class = LabelSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    pagination_class = None  # an image has tens of labels, not thousands

    def _image(self) -> Image:
        if not hasattr(self, "_cached_image"):
            visible = Image.objects.visible_to(self.request.user)
            self._cached_image = get_object_or_404(visible, pk=self.kwargs["image_pk"])
        return self._cached_image

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Label.objects.none()
        return self._image().labels.select_related("created_by").order_by("label_type", "id")

    @extend_schema(request=LabelWriteSerializer, responses={201: LabelSerializer})
    def create(self, request, *args, **kwargs):
        """Add a person's label (admin): label_type manual (default), caption or tag."""
        serializer = LabelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        label = services.create_manual_label(self._image(), user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=LabelWriteSerializer, responses=LabelSerializer)
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
    return Response(LabelingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class AlbumLabelView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=LabelingStartSerializer, responses={202: LabelingRunSerializer})
    def post(self, request, album_pk: int):
        """Label the album's images (admin) → 202 with the run; follow it at /api/labeling/runs/{id}/."""
        return _start_run(request, album=get_object_or_404(Album.objects.all(), pk=album_pk))


class ImageLabelRunView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(request=LabelingStartSerializer, responses={202: LabelingRunSerializer})
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

    @extend_schema(request=None, responses={202: LabelingRunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again (its images, counters reset)."""
        return Response(self.get_serializer(jobs.retry_job(self.get_object())).data, status=status.HTTP_202_ACCEPTED)
