from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from albums.models import Album, Image
from generation import registry, services
from generation.api.serializers import (
    DiffusionModelSerializer,
    GenerationJobCreateSerializer,
    GenerationJobSerializer,
    LoraSerializer,
    LoraUpdateSerializer,
    LoraUploadSerializer,
    SetRunCreateSerializer,
    SetRunSerializer,
)
from generation.models import DiffusionModel, GenerationJob, Lora, SetRun
from imagineer.core import jobs
from imagineer.core.parsers import FileUploadParsersMixin
from imagineer.core.permissions import IsAdmin, is_admin
from imagineer.core.ratelimits import enforce_rate_limit
from imagineer.core.responses import accepted, accepted_schema


class DiffusionModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Diffusion models the workers can load (public)."""

    serializer_class = DiffusionModelSerializer
    queryset = DiffusionModel.objects.filter(enabled=True)
    lookup_field = "name"


class LoraViewSet(FileUploadParsersMixin, viewsets.ModelViewSet):
    """The LoRA registry: anyone can list; admins upload (.safetensors only, multipart), edit (JSON) and delete."""

    serializer_class = LoraSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        query = Lora.objects.all()
        return query if is_admin(self.request.user) else query.filter(enabled=True)

    @extend_schema(request={"multipart/form-data": LoraUploadSerializer}, responses={201: LoraSerializer})
    def create(self, request, *args, **kwargs):
        serializer = LoraUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lora, created = registry.register_uploaded_lora(data.pop("file"), user=request.user, **data)
        return Response(
            {**LoraSerializer(lora).data, "duplicate": not created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=LoraUpdateSerializer, responses=LoraSerializer)
    def partial_update(self, request, *args, **kwargs):
        lora = self.get_object()
        serializer = LoraUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        for name, value in serializer.validated_data.items():
            setattr(lora, name, value)
        lora.save()
        return Response(LoraSerializer(lora).data)

    def perform_destroy(self, instance):
        name = instance.file.name
        instance.delete()
        instance.file.storage.delete(name)


class GenerationJobViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Generation jobs: signed-in users start them and see their own; admins see all."""

    permission_classes = [IsAuthenticated]
    filterset_fields = ["status", "model"]

    def get_queryset(self):
        # A job lists only the results its reader may see: an output flagged NSFW (or made private
        # by an admin) after it was generated is hidden from its owner like everywhere else.
        images = Prefetch("images", queryset=Image.objects.visible_to(self.request.user))
        query = GenerationJob.objects.select_related("model").prefetch_related(images)
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return query.none()
        return query if is_admin(self.request.user) else query.filter(created_by=self.request.user)

    def get_serializer_class(self):
        return GenerationJobCreateSerializer if self.action == "create" else GenerationJobSerializer

    @accepted_schema(GenerationJobSerializer, request=GenerationJobCreateSerializer)
    def create(self, request, *args, **kwargs):
        """Queue a job (202). Limited to IMAGINEER_GENERATION_RATE per user."""
        enforce_rate_limit(request, group="generation.jobs", rate=settings.IMAGINEER_GENERATION_RATE)
        serializer = GenerationJobCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.start_generation_job(
            user=request.user, model=data.pop("model", None) or registry.default_model(), **data
        )
        return accepted(job, GenerationJobSerializer, request)

    @extend_schema(request=None, responses=GenerationJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued job at once, a running one between diffusion steps."""
        jobs.cancel_job(self.get_object())
        job = self.get_object()  # read again through the queryset: cancel_job's refresh drops the filtered images
        return Response(GenerationJobSerializer(job, context=self.get_serializer_context()).data)

    @accepted_schema(GenerationJobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue this failed or cancelled job again (202). Images it stored before it stopped are kept
        and not made twice (same seed, same bytes); limited like new jobs."""
        enforce_rate_limit(request, group="generation.jobs", rate=settings.IMAGINEER_GENERATION_RATE)
        services.retry_generation_job(self.get_object(), user=request.user)
        # Read again through the queryset: retry_job's refresh drops the images visible to this user.
        return accepted(self.get_object(), GenerationJobSerializer, request)

    @accepted_schema(GenerationJobSerializer)
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """Queue a new job with exactly the same parameters, seed included."""
        enforce_rate_limit(request, group="generation.jobs", rate=settings.IMAGINEER_GENERATION_RATE)
        job = services.rerun_generation_job(self.get_object(), user=request.user)
        return accepted(job, GenerationJobSerializer, request)


class SetRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Set runs (admin). Started with POST /api/albums/{id}/generate/."""

    serializer_class = SetRunSerializer
    permission_classes = [IsAdmin]
    queryset = SetRun.objects.select_related("model")
    filterset_fields = ["status", "template"]

    @extend_schema(request=None, responses=SetRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = jobs.cancel_job(get_object_or_404(SetRun, pk=pk))
        return Response(self.get_serializer(run).data)

    @accepted_schema(SetRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled set run again (its counters reset; rows already made are kept)."""
        run = services.retry_set_run(get_object_or_404(SetRun, pk=pk), user=request.user)
        return accepted(run, SetRunSerializer, request)


class SetTemplateViewSet(viewsets.GenericViewSet):
    """Set templates start set runs: `albums/{id}/generate/`, added under albums' prefix by generation/api/urls.py.

    A set template is an album; running it is generation's, so generation adds the route to albums'
    URLs (as labeling adds `albums/{id}/label/`) and albums imports none of it. The operation keeps
    the id, tag and description it had when it was an action of albums' AlbumViewSet.
    """

    queryset = Album.objects.all()
    serializer_class = SetRunCreateSerializer
    permission_classes = [IsAdmin]

    @accepted_schema(
        SetRunSerializer, request=SetRunCreateSerializer, operation_id="albums_generate_create", tags=["albums"]
    )
    @action(detail=True, methods=["post"])
    def generate(self, request, pk=None):
        """Start a set run from this set template (admin): one image per row into a new album."""
        template = self.get_object()
        serializer = SetRunCreateSerializer(data=request.data, context={"template": template, "request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        run = services.start_set_run(
            template,
            user=request.user,
            theme=data.pop("theme"),
            album_name=data.pop("album_name", ""),
            model=data.pop("model", None),
            batch_size=data.pop("batch_size", None),
            overrides=data,
        )
        return accepted(run, SetRunSerializer, request)
