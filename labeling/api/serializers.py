from rest_framework import serializers

from imagineer.core.permissions import is_admin
from imagineer.core.serializers import JobSerializer, StrictSerializer
from labeling.models import LABEL_TEXT_MAX, Label, LabelerName, LabelingRun
from labeling.services import MANUAL_LABEL_TYPES


class LabelSerializer(serializers.ModelSerializer):
    """A label as clients see it; who wrote a person's label is shown to admins only."""

    image = serializers.IntegerField(source="image_id", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = [
            "id", "image", "text", "label_type", "confidence", "source", "source_model", "run", "created_by",
            "created_at",
        ]  # fmt: skip
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
    class Meta(JobSerializer.Meta):
        model = LabelingRun
        fields = [
            *JobSerializer.Meta.fields,
            "labeler", "source_model", "album", "image_ids", "force", "skipped_count", "succeeded_count",
            "failed_count", "failures", "input_tokens", "output_tokens",
        ]  # fmt: skip
        read_only_fields = fields
