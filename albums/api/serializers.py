"""The albums API's serializers: images, uploads, bulk flags, albums (set templates included), thumbnail jobs."""

from collections.abc import Callable
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from albums.models import Album, Image, NsfwRating, ThumbnailJob
from imagineer.core.serializers import (
    AdminEnrichedMixin,
    ImageIdsSerializer,
    JobSerializer,
    ObjectIdField,
    StrictModelSerializer,
    StrictSerializer,
)

SetPromptRule = Callable[[Album, dict[str, Any], str], str]

# A set template's prompts follow generation's rule (generation.sets.render_set_prompt): generation
# registers it in its AppConfig.ready(), since albums never imports the apps above it.
_set_prompt_rule: SetPromptRule | None = None


def register_set_prompt_rule(rule: SetPromptRule) -> None:
    """Have AlbumSerializer preview a set template's prompts as `rule(template, row, theme)` renders them."""
    global _set_prompt_rule
    _set_prompt_rule = rule


def _absolute(request, url: str) -> str:
    return request.build_absolute_uri(url) if request is not None else url


class ImageSerializer(AdminEnrichedMixin, StrictModelSerializer):
    """An image as clients see it. Files are reached by URL, never by path."""

    # Moderation data: a machine's ADULT on an image an admin judged safe is not for the public.
    admin_only_fields = ("nsfw_rating", "nsfw_flag_source", "nsfw_check_error")

    url = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    # Declared: a read-only model field would lose allow_blank, and "" (never rated) is a value.
    nsfw_rating = serializers.ChoiceField(choices=NsfwRating.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Image
        fields = [
            "id",
            "url",
            "file_url",
            "thumbnail_url",
            "sha256",
            "width",
            "height",
            "format",
            "file_size",
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "guidance_scale",
            "model",
            "loras",
            "is_nsfw",
            "nsfw_rating",
            "nsfw_flag_source",
            "is_public",
            "nsfw_check",
            "nsfw_check_error",
            "source",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "nsfw_rating",
            "nsfw_flag_source",
            "nsfw_check",
            "nsfw_check_error",
            "sha256",
            "width",
            "height",
            "format",
            "file_size",
            "seed",
            "steps",
            "guidance_scale",
            "model",
            "loras",
            "source",
            "created_at",
            "updated_at",
        ]

    def get_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("image-detail", args=[obj.pk]))

    def get_file_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("image-file", args=[obj.pk]))

    def get_thumbnail_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("image-thumbnail", args=[obj.pk]))


class ImageUploadResultSerializer(ImageSerializer):
    """An upload's answer: the image, and whether identical bytes were already stored (context `duplicate`)."""

    duplicate = serializers.SerializerMethodField(
        help_text="True (with 200) when identical bytes were already stored: the image is the existing one."
    )

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "duplicate"]

    def get_duplicate(self, obj) -> bool:
        return bool(self.context.get("duplicate", False))


class ImageUpdateSerializer(StrictModelSerializer):
    class Meta:
        model = Image
        fields = ["prompt", "negative_prompt", "is_nsfw", "is_public"]


class ImageUploadSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True, help_text="JPEG, PNG, WebP or GIF; decided by content.")
    album = serializers.PrimaryKeyRelatedField(queryset=Album.objects.all(), required=False)
    is_public = serializers.BooleanField(default=True)
    is_nsfw = serializers.BooleanField(default=False)
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    negative_prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class BulkImageFlagsSerializer(ImageIdsSerializer):
    is_nsfw = serializers.BooleanField(required=False)
    is_public = serializers.BooleanField(required=False)

    def validate(self, attrs):
        if "is_nsfw" not in attrs and "is_public" not in attrs:
            raise serializers.ValidationError("Give is_nsfw and/or is_public.")
        return attrs


class ThumbnailRebuildSerializer(StrictSerializer):
    image_ids = serializers.ListField(child=ObjectIdField(), required=False, max_length=5000)
    album = serializers.PrimaryKeyRelatedField(queryset=Album.objects.all(), required=False)

    def validate(self, attrs):
        if bool(attrs.get("image_ids")) == bool(attrs.get("album")):
            raise serializers.ValidationError("Give either image_ids or album.")
        return attrs


class AlbumSerializer(StrictModelSerializer):
    image_count = serializers.IntegerField(read_only=True)
    default_model = serializers.SlugRelatedField(
        slug_field="name",
        # generation's DiffusionModel, reached through the relation the model declares.
        queryset=Album._meta.get_field("default_model").related_model.objects.all(),
        required=False,
        allow_null=True,
    )
    template_items_preview = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    images_url = serializers.SerializerMethodField()
    slug = serializers.SlugField(max_length=255, required=False)

    class Meta:
        model = Album
        fields = [
            "id",
            "url",
            "name",
            "slug",
            "description",
            "album_type",
            "is_public",
            "source_type",
            "source_id",
            "image_count",
            "images_url",
            "created_at",
            "updated_at",
            # set-template fields (is_set_template albums are recipes, not outputs)
            "is_set_template",
            "template_items",
            "template_items_preview",
            "base_prompt",
            "prompt_template",
            "style_suffix",
            "example_theme",
            "width",
            "height",
            "negative_prompt",
            "loras",
            "default_model",
        ]
        read_only_fields = ["source_type", "source_id", "created_at", "updated_at"]
        extra_kwargs = {"name": {"max_length": 255}}

    def validate_slug(self, value: str) -> str:
        others = Album.objects.filter(slug=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"An album with slug '{value}' already exists.")
        return value

    def get_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("album-detail", args=[obj.pk]))

    def get_template_items_preview(self, obj) -> list[str]:
        """The first rendered prompts of a set template, with its example theme."""
        if not obj.is_set_template:
            return []
        return [_set_prompt_rule(obj, row, obj.example_theme) for row in obj.template_items[:5]]

    def validate_template_items(self, value):
        if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
            raise serializers.ValidationError("Must be a list of objects (one per CSV row).")
        return value

    def get_images_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("album-images", args=[obj.pk]))


class ThumbnailJobSerializer(JobSerializer):
    detail_url_name = "thumbnail-job-detail"

    class Meta(JobSerializer.Meta):
        model = ThumbnailJob
        fields = [*JobSerializer.Meta.fields, "image_ids", "rebuilt_count", "failed_count", "failures"]
        read_only_fields = fields
