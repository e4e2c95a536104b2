"""Label analytics endpoints: parse and authorise, call one function of labeling.analytics.

GET /api/albums/{album_pk}/labeling/analytics   admin: one album's labeling progress
GET /api/labels/stats                           everyone, scoped to the images they may see
GET /api/labels/top-tags                        everyone, scoped
GET /api/labels/distribution                    everyone, scoped

The response serializers below only describe the shapes for the OpenAPI schema; the analytics
functions already return plain JSON-ready dicts.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from albums.models import Album
from imagineer.core.permissions import IsAdmin
from labeling import analytics
from labeling.models import LabelType

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
        help_text="Items of the list to skip (top-tags results, distribution albums; stats' top_tags always start at 0).",
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


def _parse_filters(request) -> analytics.LabelFilters:
    query = LabelAnalyticsQuerySerializer(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    return query.filters()


# --- response shapes (schema only) -----------------------------------------------------------


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


_SCOPE = (
    "Admins aggregate over every image. Everyone else (anonymous or signed in) over public, non-NSFW "
    "images only: the same figures for every non-admin (a user's own private images are not counted)."
)
_FILTER_ERRORS = OpenApiResponse(description="validation_error: bad label_type, album, limit or offset.")


# --- views ------------------------------------------------------------------------------------


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
