from django.urls import reverse
from rest_framework import serializers

from albums.models import Album
from generation.models import FAMILY_SIZE_LIMITS, DiffusionModel, GenerationJob, Lora, ModelFamily, ModelSource, SetRun
from generation.pipeline.schedulers import SCHEDULERS
from generation.registry import InvalidLora, default_model, model_defaults, resolve_lora
from generation.services import MAX_SEED
from imagineer.core.serializers import JobSerializer, StrictSerializer

MAX_PROMPT = 2000
MAX_LORAS = 5


class DiffusionModelSerializer(serializers.ModelSerializer):
    defaults = serializers.SerializerMethodField()
    hub_id = serializers.SerializerMethodField(help_text="The hub id for hub models; local paths are never shown.")

    class Meta:
        model = DiffusionModel
        fields = ["name", "family", "source_type", "hub_id", "description", "is_default", "defaults"]

    def get_defaults(self, obj) -> dict:
        return model_defaults(obj)

    def get_hub_id(self, obj) -> str | None:
        return obj.source if obj.source_type == ModelSource.HUB else None


class LoraSerializer(serializers.ModelSerializer):
    trigger_words = serializers.ListField(source="trigger_word_list", child=serializers.CharField(), read_only=True)

    class Meta:
        model = Lora
        fields = [
            "id",
            "name",
            "slug",
            "family",
            "trigger_words",
            "default_weight",
            "provenance",
            "source_id",
            "file_size",
            "sha256",
            "description",
            "enabled",
            "created_at",
        ]
        read_only_fields = fields


class LoraUploadSerializer(StrictSerializer):
    file = serializers.FileField(help_text=".safetensors only")
    name = serializers.CharField(max_length=200)
    family = serializers.ChoiceField(choices=ModelFamily.choices, required=False)
    trigger_words = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    default_weight = serializers.FloatField(min_value=-2, max_value=2, default=0.6)


class LoraUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    trigger_words = serializers.CharField(max_length=500, required=False, allow_blank=True)
    default_weight = serializers.FloatField(min_value=-2, max_value=2, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class LoraWeightSerializer(StrictSerializer):
    lora = serializers.CharField(help_text="LoRA slug or id.")
    weight = serializers.FloatField(min_value=-2, max_value=2, required=False)


def _model_by_name(name: str) -> DiffusionModel:
    model = DiffusionModel.objects.filter(name=name, enabled=True).first()
    if model is None:
        known = ", ".join(DiffusionModel.objects.filter(enabled=True).values_list("name", flat=True)) or "none"
        raise serializers.ValidationError(f"Unknown model '{name}'. Available: {known}.")
    return model


def _lora_by_reference(reference: str) -> Lora:
    try:
        return resolve_lora(reference)
    except InvalidLora as exc:
        raise serializers.ValidationError(exc.message) from exc


class GenerationParametersSerializer(StrictSerializer):
    """The parameters shared by single jobs and set-run overrides, with the limits users know."""

    negative_prompt = serializers.CharField(
        max_length=MAX_PROMPT, required=False, allow_blank=True, trim_whitespace=True
    )
    model = serializers.CharField(required=False, help_text="Model name; the default model when left out.")
    scheduler = serializers.ChoiceField(choices=sorted(SCHEDULERS), required=False)
    steps = serializers.IntegerField(min_value=1, max_value=150, required=False)
    guidance_scale = serializers.FloatField(min_value=0, max_value=30, required=False)
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False)

    def validate_model(self, value: str) -> DiffusionModel:
        return _model_by_name(value)

    def _check_size(self, attrs, model: DiffusionModel | None) -> None:
        if model is None:
            model = default_model()
        low, high = FAMILY_SIZE_LIMITS[ModelFamily(model.family)]
        errors = {}
        for name in ("width", "height"):
            value = attrs.get(name)
            if value is None:
                continue
            if not low <= value <= high:
                errors[name] = [f"Must be between {low} and {high} for {model.get_family_display()} models."]
            elif value % 8:
                errors[name] = ["Must be a multiple of 8."]
        if errors:
            raise serializers.ValidationError(errors)


class GenerationJobCreateSerializer(GenerationParametersSerializer):
    prompt = serializers.CharField(max_length=MAX_PROMPT, trim_whitespace=True)
    count = serializers.IntegerField(min_value=1, max_value=8, default=1)
    loras = LoraWeightSerializer(many=True, required=False, max_length=MAX_LORAS)
    album = serializers.PrimaryKeyRelatedField(queryset=Album.objects.all(), required=False, allow_null=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only albums the caller may fill: others' albums answer "does not exist", like any 404.
        request = self.context.get("request")
        user = getattr(request, "user", None)
        albums = Album.objects.all()
        if not (user is not None and user.is_staff):
            albums = albums.filter(created_by=user) if user is not None and user.is_authenticated else albums.none()
        self.fields["album"].queryset = albums

    def validate_album(self, album):
        if album is not None and album.is_set_template:
            raise serializers.ValidationError("A set template never collects generated images.")
        return album

    def validate_loras(self, value):
        loras = [(_lora_by_reference(entry["lora"]), entry.get("weight")) for entry in value]
        if len({lora.pk for lora, _ in loras}) != len(loras):
            raise serializers.ValidationError("The same LoRA is listed twice.")
        return loras

    def validate(self, attrs):
        self._check_size(attrs, attrs.get("model"))
        attrs["loras"] = [(lora, lora.default_weight if w is None else w) for lora, w in attrs.get("loras", [])]
        return attrs


class SetRunCreateSerializer(GenerationParametersSerializer):
    theme = serializers.CharField(max_length=500, trim_whitespace=True)
    album_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    batch_size = serializers.IntegerField(min_value=1, max_value=8, required=False)

    def validate(self, attrs):
        template = self.context["template"]
        # The size the run will use: the override, else the template's (checked like any job's).
        size = {"width": attrs.get("width") or template.width, "height": attrs.get("height") or template.height}
        self._check_size(size, attrs.get("model") or template.default_model)
        return attrs


class GeneratedImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    def _abs(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_url(self, obj) -> str:
        return self._abs(reverse("image-detail", args=[obj.pk]))

    def get_thumbnail_url(self, obj) -> str:
        return self._abs(reverse("image-thumbnail", args=[obj.pk]))


class GenerationJobSerializer(JobSerializer):
    detail_url_name = "generation-job-detail"
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    images = GeneratedImageSerializer(many=True, read_only=True)
    image_ids = serializers.PrimaryKeyRelatedField(source="images", many=True, read_only=True)
    timings = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        model = GenerationJob
        fields = [
            *JobSerializer.Meta.fields,
            "prompt",
            "negative_prompt",
            "model",
            "scheduler",
            "steps",
            "guidance_scale",
            "width",
            "height",
            "seed",
            "count",
            "loras",
            "album",
            "image_ids",
            "images",
            "timings",
        ]
        read_only_fields = fields

    def get_timings(self, obj) -> dict:
        queued = (obj.started_at - obj.created_at).total_seconds() if obj.started_at else None
        return {
            "queued_seconds": round(queued, 3) if queued is not None else None,
            "model_load_seconds": obj.load_seconds,
            "inference_seconds": obj.inference_seconds,
            "save_seconds": obj.save_seconds,
            "total_seconds": obj.duration_seconds,
        }


class SetRunSerializer(JobSerializer):
    detail_url_name = "set-run-detail"
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    parameters = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        model = SetRun
        fields = [
            *JobSerializer.Meta.fields,
            "template",
            "output_album",
            "album_name",
            "theme",
            "model",
            "parameters",
            "batch_size",
            "total_items",
            "completed_items",
            "failed_items",
            "failures",
        ]
        read_only_fields = fields

    def get_parameters(self, obj) -> dict:
        return {k: v for k, v in obj.parameters.items() if k != "items"}
