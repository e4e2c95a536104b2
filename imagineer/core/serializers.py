from rest_framework import serializers

from imagineer.core.models import AbstractJob


class StrictFieldsMixin:
    """Refuse input keys the serializer does not accept, instead of silently dropping them."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            read_only = {name for name, field in self.fields.items() if field.read_only}
            errors = {}
            for key in sorted(set(data.keys()) - writable):
                errors[key] = ["This field is read-only."] if key in read_only else ["Unknown field."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


class JobSerializer(serializers.ModelSerializer):
    """The fields every job kind exposes; concrete job serializers extend Meta.fields."""

    progress = serializers.FloatField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = AbstractJob
        fields = [
            "id",
            "status",
            "progress",
            "progress_current",
            "progress_total",
            "progress_message",
            "error_message",
            "cancel_requested",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class ImageIdsSerializer(StrictSerializer):
    image_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False, max_length=5000)
