"""`/api/training/runs/`: list and detail for everyone (public fields), the rest for admins.

Public: id, name, status, progress, dates, base model family, the resulting LoRA's public name.
Admin-only: albums, who started it, parameters, dataset counts, losses, errors, checkpoints, logs.
"""

from __future__ import annotations

import pydantic
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from albums.models import Album
from generation.models import DiffusionModel
from generation.services import default_model
from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin, is_admin
from imagineer.core.ratelimits import enforce_rate_limit
from imagineer.core.serializers import AdminEnrichedMixin, JobSerializer, ObjectIdField, StrictSerializer
from training import logs, runs
from training.models import TrainingCheckpoint, TrainingRun

PUBLIC_FIELDS = (
    "id",
    "name",
    "status",
    "progress",
    "created_at",
    "started_at",
    "finished_at",
    "model_family",
    "lora_name",
)
MAX_ALBUMS = 50


class TrainingCheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingCheckpoint
        fields = ["step", "attempt", "loss", "file_size", "created_at"]
        read_only_fields = fields


class TrainingRunSerializer(AdminEnrichedMixin, JobSerializer):
    """A run. Non-admins get PUBLIC_FIELDS only, and only those are computed (no album or
    checkpoint queries for rows they never see)."""

    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model_family = serializers.CharField(source="model.family", read_only=True)
    lora_name = serializers.SerializerMethodField(help_text="The resulting LoRA's name, once registered and enabled.")
    lora_slug = serializers.SerializerMethodField()
    checkpoints = TrainingCheckpointSerializer(many=True, read_only=True)
    log_available = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        model = TrainingRun
        fields = [
            *JobSerializer.Meta.fields, "name", "description", "model", "model_family", "albums", "trigger_words",
            "parameters", "captioned_images", "uncaptioned_images", "manual_captions", "missing_files",
            "latest_loss", "final_loss", "device", "prepare_seconds", "train_seconds", "lora", "lora_name",
            "lora_slug", "checkpoints", "log_available", "created_by",
        ]  # fmt: skip
        read_only_fields = fields

    admin_only_fields = tuple(name for name in Meta.fields if name not in PUBLIC_FIELDS)

    def get_lora_name(self, obj) -> str | None:
        return obj.lora.name if obj.lora is not None and obj.lora.enabled else None

    def get_lora_slug(self, obj) -> str | None:
        return obj.lora.slug if obj.lora is not None else None

    def get_log_available(self, obj) -> bool:
        return bool(obj.log_file.name)


class TrainingRunCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    albums = serializers.ListField(
        child=ObjectIdField(), allow_empty=False, max_length=MAX_ALBUMS, help_text="Album ids."
    )
    model = serializers.CharField(required=False, help_text="Model name; the default model when left out.")
    trigger_words = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    # Parameters: types here, bounds in the runtime config schema (one place for both).
    steps = serializers.IntegerField(required=False)
    rank = serializers.IntegerField(required=False)
    alpha = serializers.IntegerField(required=False)
    learning_rate = serializers.FloatField(required=False)
    batch_size = serializers.IntegerField(required=False)
    gradient_accumulation_steps = serializers.IntegerField(required=False)
    warmup_steps = serializers.IntegerField(required=False)
    resolution = serializers.IntegerField(required=False)
    center_crop = serializers.BooleanField(required=False)
    random_flip = serializers.BooleanField(required=False)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=runs.MAX_SEED)
    save_every_steps = serializers.IntegerField(required=False)
    mixed_precision = serializers.ChoiceField(choices=["no", "fp16", "bf16"], required=False)

    def validate_albums(self, value):
        ids = list(dict.fromkeys(value))
        albums = {album.pk: album for album in Album.objects.filter(pk__in=ids)}
        missing = [pk for pk in ids if pk not in albums]
        if missing:
            raise serializers.ValidationError(f"Unknown album id(s): {', '.join(map(str, missing))}.")
        templates = [albums[pk].name for pk in ids if albums[pk].is_set_template]
        if templates:
            raise serializers.ValidationError(f"Set templates hold no images: {', '.join(templates)}.")
        return [albums[pk] for pk in ids]

    def validate_model(self, value):
        model = DiffusionModel.objects.filter(name=value, enabled=True).first()
        if model is None:
            raise serializers.ValidationError(f"Unknown model '{value}'.")
        return model

    def validate(self, attrs):
        overrides = {name: attrs.pop(name) for name in list(attrs) if name in runs.PARAMETER_NAMES}
        try:
            attrs["parameters"] = runs.resolve_parameters(overrides)
        except pydantic.ValidationError as exc:
            raise serializers.ValidationError(
                {".".join(map(str, e["loc"])) or "parameters": [e["msg"]] for e in exc.errors()}
            ) from exc
        attrs["model"] = attrs.get("model") or default_model()
        return attrs


class TrainingLogSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.CharField()
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField(help_text="Ask for this offset next to get only newer lines.")
    size = serializers.IntegerField(help_text="Bytes stored so far.")
    lines = serializers.ListField(child=serializers.CharField(allow_blank=True))
    complete = serializers.BooleanField(help_text="The run has ended and every line has been read.")


class TrainingRunViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Training runs. Anyone lists them (public fields); admins start, cancel, retry and read logs."""

    serializer_class = TrainingRunSerializer
    filterset_fields = ["status"]

    def get_permissions(self):
        if self.request.method in SAFE_METHODS and self.action in ("list", "retrieve"):
            return []
        return [IsAdmin()]

    def get_queryset(self):
        query = TrainingRun.objects.select_related("model", "lora")
        if self.action in ("list", "retrieve") and not is_admin(self.request.user):
            return query
        return query.prefetch_related("albums", "checkpoints")

    @extend_schema(request=TrainingRunCreateSerializer, responses={202: TrainingRunSerializer})
    def create(self, request, *args, **kwargs):
        """Start a run (admin, 202). Refused with 400 for too few captions, 429 when busy or over the rate."""
        serializer = TrainingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        enforce_rate_limit(request, group="training.start", rate=settings.IMAGINEER_TRAINING_START_RATE)
        run = runs.start_training_run(user=request.user, **serializer.validated_data)
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=TrainingRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued run at once; a running one's trainer is stopped (SIGTERM, grace, SIGKILL)."""
        run = jobs.cancel_job(self.get_object())
        return Response(self.get_serializer(run).data)

    @extend_schema(request=None, responses={202: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again, with the same parameters (same limits as a start)."""
        run = self.get_object()
        enforce_rate_limit(request, group="training.start", rate=settings.IMAGINEER_TRAINING_START_RATE)
        run = runs.retry_training_run(run)
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("offset", int, description="Byte offset: 0, then the last next_offset.")],
        responses=TrainingLogSerializer,
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The trainer's output after `offset` (admin): poll with the returned next_offset to follow a run."""
        run = self.get_object()
        raw = request.query_params.get("offset", "0")
        if not raw.isdigit():
            raise logs.InvalidLogOffset("offset must be a whole number of bytes (0 to start).")
        chunk = logs.read_log(run, int(raw))
        complete = run.is_final and chunk.next_offset >= chunk.size
        return Response(
            {
                "run": run.pk,
                "status": run.status,
                "offset": chunk.offset,
                "next_offset": chunk.next_offset,
                "size": chunk.size,
                "lines": chunk.lines,
                "complete": complete,
            }
        )
