"""Shapes of `/api/training/runs/`: a run (public fields for everyone, the rest for admins), the start
request with its parameters, and a page of the trainer's log."""

from __future__ import annotations

import pydantic
from rest_framework import serializers

from albums.models import Album
from generation.models import DiffusionModel
from generation.registry import default_model
from imagineer.core.serializers import AdminEnrichedMixin, JobSerializer, ObjectIdField, StrictSerializer
from training.models import TrainingCheckpoint, TrainingRun
from training.services import runs

PUBLIC_FIELDS = (
    "id",
    "url",
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

    detail_url_name = "training-run-detail"
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model_family = serializers.CharField(source="model.family", read_only=True)
    lora_name = serializers.SerializerMethodField(help_text="The resulting LoRA's name, once registered and enabled.")
    lora_slug = serializers.SerializerMethodField()
    checkpoints = TrainingCheckpointSerializer(many=True, read_only=True)
    log_available = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        model = TrainingRun
        fields = [
            *JobSerializer.Meta.fields,
            "name",
            "description",
            "model",
            "model_family",
            "albums",
            "trigger_words",
            "parameters",
            "captioned_images",
            "uncaptioned_images",
            "manual_captions",
            "missing_files",
            "latest_loss",
            "final_loss",
            "device",
            "prepare_seconds",
            "train_seconds",
            "lora",
            "lora_name",
            "lora_slug",
            "checkpoints",
            "log_available",
            "created_by",
        ]
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
