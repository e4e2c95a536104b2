"""Labeling API serializers: labels, labeling runs, and the label analytics' query and responses.

The analytics response serializers only describe the shapes for the OpenAPI schema; the analytics
functions already return plain JSON-ready dicts.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from albums.models import Album
from imagineer.core.permissions import is_admin
from imagineer.core.serializers import JobSerializer, StrictSerializer
from labeling import analytics
from labeling.models import LABEL_TEXT_MAX, Label, LabelerName, LabelingRun, LabelType
from labeling.services import MANUAL_LABEL_TYPES


class LabelSerializer(serializers.ModelSerializer):
    """A label as clients see it; who wrote a person's label is shown to admins only."""

    image = serializers.IntegerField(source="image_id", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = [
            "id",
            "image",
            "text",
            "label_type",
            "confidence",
            "source",
            "source_model",
            "run",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_created_by(self, obj) -> str | None:
        request = self.context.get("request")
        if request is None or not is_admin(request.user) or obj.created_by_id is None:
            return None
        return obj.created_by.get_username()


class LabelWriteSerializer(StrictSerializer):
    text = serializers.CharField(max_length=LABEL_TEXT_MAX, trim_whitespace=True)
    label_type = serializers.ChoiceField(choices=MANUAL_LABEL_TYPES, default="manual")
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0, required=False, allow_null=True)


class LabelingStartSerializer(StrictSerializer):
    labeler = serializers.ChoiceField(
        choices=LabelerName.choices,
        required=False,
        help_text="Default: IMAGINEER_LABELER (auto: Claude when a key is set).",
    )
    force = serializers.BooleanField(default=False, help_text="Label again images this labeler already labeled.")


class LabelingRunSerializer(JobSerializer):
    detail_url_name = "labeling-run-detail"

    class Meta(JobSerializer.Meta):
        model = LabelingRun
        fields = [
            *JobSerializer.Meta.fields,
            "labeler",
            "source_model",
            "album",
            "image_ids",
            "force",
            "skipped_count",
            "succeeded_count",
            "failed_count",
            "failures",
            "input_tokens",
            "output_tokens",
        ]
        read_only_fields = fields


# --- label analytics ---------------------------------------------------------------------

_LIMIT_RANGE = f"an integer from 1 to {analytics.MAX_LIMIT}"
_OFFSET_RANGE = f"an integer from 0 to {analytics.MAX_OFFSET}"
_LABEL_TYPES = ", ".join(LabelType.values)
_MAX_ID = 2**63 - 1


class LabelAnalyticsQuerySerializer(serializers.Serializer):
    """Query parameters of /api/labels/*. Unknown parameters are ignored (DRF convention); values are strict."""

    label_type = serializers.ChoiceField(
        choices=LabelType.choices,
        required=False,
        help_text="Count only labels of this type.",
        error_messages={"invalid_choice": f'Unknown label type "{{input}}"; accepted: {_LABEL_TYPES}.'},
    )
    album = serializers.IntegerField(
        required=False,
        max_value=_MAX_ID,  # past bigint the database would fail, not answer "unknown album"
        help_text="Count only images of this album (one you may see).",
        error_messages={
            key: "Must be an album id (an integer)." for key in ("invalid", "max_value", "max_string_length")
        },
    )
    limit = serializers.IntegerField(
        min_value=1,
        max_value=analytics.MAX_LIMIT,
        default=analytics.DEFAULT_LIMIT,
        help_text=(
            f"Length of the list (stats top_tags, top-tags results, distribution albums): 1 to {analytics.MAX_LIMIT}, "
            f"default {analytics.DEFAULT_LIMIT}."
        ),
        error_messages={
            key: f"Must be {_LIMIT_RANGE}." for key in ("invalid", "min_value", "max_value", "max_string_length")
        },
    )
    offset = serializers.IntegerField(
        min_value=0,
        max_value=analytics.MAX_OFFSET,
        default=0,
        help_text=(
            "Items of the list to skip (top-tags results, distribution albums; stats' top_tags always start at 0)."
        ),
        error_messages={
            key: f"Must be {_OFFSET_RANGE}." for key in ("invalid", "min_value", "max_value", "max_string_length")
        },
    )

    def validate_album(self, value: int) -> int:
        user = self.context["request"].user
        if not Album.objects.visible_to(user).filter(pk=value).exists():
            # One message for "does not exist" and "exists but hidden from you": ids do not leak.
            raise serializers.ValidationError(f"Unknown album {value}: pass the id of an album you may see.")
        return value

    def filters(self) -> analytics.LabelFilters:
        data = self.validated_data
        return analytics.LabelFilters(
            label_type=data.get("label_type"), album_id=data.get("album"), limit=data["limit"], offset=data["offset"]
        )


# --- label analytics: response shapes (schema only) -----------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "enum": [f"{analytics.HISTOGRAM_CAP}+"]}]})
class _BucketLabelsField(serializers.Field):
    pass


class _ByTypeField(serializers.DictField):
    """{label_type: count} with every label type present."""

    child = serializers.IntegerField()


class TagCountSerializer(serializers.Serializer):
    tag = serializers.CharField()
    count = serializers.IntegerField()
    percentage = serializers.FloatField(help_text="count / all tag labels in scope × 100, 2 dp.")


class AlbumLabelingAnalyticsSerializer(serializers.Serializer):
    album_id = serializers.IntegerField()
    image_count = serializers.IntegerField()
    labels_total = serializers.IntegerField()
    labels_by_type = _ByTypeField()
    images_with_labels = serializers.IntegerField()
    images_with_manual_labels = serializers.IntegerField(
        help_text="Images with a label a person wrote (source manual)."
    )
    images_with_captions = serializers.IntegerField()
    unlabeled_images = serializers.IntegerField()
    average_labels_per_image = serializers.FloatField()
    coverage = serializers.DictField(
        child=serializers.FloatField(), help_text="labels_percent, manual_percent, caption_percent: % of image_count."
    )
    top_tags = TagCountSerializer(many=True)
    nsfw_count = serializers.IntegerField()
    last_labeled_at = serializers.DateTimeField(allow_null=True)


class LabelStatsSerializer(serializers.Serializer):
    total_labels = serializers.IntegerField()
    unique_labels = serializers.IntegerField(help_text="Distinct label texts.")
    images_total = serializers.IntegerField(help_text="Images in scope.")
    images_with_labels = serializers.IntegerField()
    avg_labels_per_image = serializers.FloatField()
    min_labels_per_image = serializers.IntegerField()
    max_labels_per_image = serializers.IntegerField()
    coverage_percent = serializers.FloatField()
    top_tags = TagCountSerializer(many=True)
    by_type = _ByTypeField()


class TopTagsSerializer(serializers.Serializer):
    total_labels = serializers.IntegerField(help_text="Tag labels in scope: the percentages' denominator.")
    unique_tags = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = TagCountSerializer(many=True)


class HistogramBucketSerializer(serializers.Serializer):
    labels = _BucketLabelsField(help_text=f'Labels per image; "{analytics.HISTOGRAM_CAP}+" for the last bucket.')
    images = serializers.IntegerField()


class AlbumLabelCoverageSerializer(serializers.Serializer):
    album_id = serializers.IntegerField()
    name = serializers.CharField()
    image_count = serializers.IntegerField()
    images_with_labels = serializers.IntegerField()
    labels_total = serializers.IntegerField()
    coverage_percent = serializers.FloatField()


class LabelDistributionSerializer(serializers.Serializer):
    by_type = _ByTypeField()
    labels_per_image = HistogramBucketSerializer(many=True)
    albums = AlbumLabelCoverageSerializer(many=True)
    album_count = serializers.IntegerField()
