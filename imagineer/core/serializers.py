from typing import ClassVar

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from imagineer.celery import queue_for_task
from imagineer.core.models import AbstractJob
from imagineer.core.permissions import is_admin
from imagineer.core.workers import LiveQueues, waits_for_worker

# Context key set only while the OpenAPI schema is built: describe every field, whoever asks.
DESCRIBING_SCHEMA = "_describing_schema"


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


class AdminEnrichedMixin:
    """`admin_only_fields` are in the representation for admins only, and only computed for them.

    Without a request (a serializer used outside a view) they are left out: hiding is the safe
    default. The schema describes them, whoever fetches it, as optional (AdminEnrichedSchema).
    """

    admin_only_fields: tuple[str, ...] = ()

    def get_fields(self):
        fields = super().get_fields()
        if self.context.get(DESCRIBING_SCHEMA):
            return fields
        request = self.context.get("request")
        if request is not None and is_admin(request.user):
            return fields
        return {name: field for name, field in fields.items() if name not in self.admin_only_fields}


class AdminEnrichedSchema(OpenApiSerializerExtension):
    """One schema for both shapes: admin-only fields are described but never required.

    The schema view builds serializers with a request of whoever fetched it; without this, an
    anonymous reader's schema would omit the admin fields and an admin's would require them of
    public responses.
    """

    target_class = AdminEnrichedMixin
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        full = type(self.target)(context={**self.target.context, DESCRIBING_SCHEMA: True})
        schema = auto_schema._map_basic_serializer(full, direction)
        admin_only = set(self.target.admin_only_fields)
        required = [name for name in schema.get("required", []) if name not in admin_only]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        note = "Admins only: left out of the response for everyone else."
        for name in admin_only & set(schema.get("properties", {})):
            prop = schema["properties"][name]
            if "$ref" in prop:
                schema["properties"][name] = prop = {"allOf": [prop]}
            prop["description"] = f"{prop['description']} {note}" if prop.get("description") else note
        return schema


@extend_schema_field(OpenApiTypes.URI)
class DetailUrlField(serializers.Field):
    """The object's own API URL, from its serializer's `detail_url_name` (absolute given a request)."""

    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, instance) -> str:
        url_name = getattr(self.parent, "detail_url_name", None)
        if not url_name:
            raise ImproperlyConfigured(f"{type(self.parent).__name__} needs detail_url_name (its detail route).")
        return reverse(url_name, kwargs={"pk": instance.pk}, request=self.context.get("request"))


class JobSerializer(serializers.ModelSerializer):
    """The fields every job kind exposes; concrete job serializers extend Meta.fields.

    Each names its detail route in `detail_url_name`, so every job answers its own `url`: the
    `Location` of the 202 that started it (imagineer.core.responses.accepted), and what to poll.
    """

    detail_url_name: ClassVar[str] = ""
    url = DetailUrlField(help_text="This job's own URL: poll it to follow the job.")
    progress = serializers.FloatField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    queue = serializers.SerializerMethodField(help_text="The Celery queue this kind of job runs from.")
    sent_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the job's task was last sent to its queue (start, retry, or sent again); null before.",
    )
    resend_count = serializers.IntegerField(
        read_only=True,
        help_text=(
            "Times the task was sent again because no live worker held its message (a worker died, or "
            "none consumed its queue); a retry starts it at 0."
        ),
    )
    waiting_for_worker = serializers.SerializerMethodField(
        help_text=(
            "True while the job is queued and no live worker consumes its queue: it will not start until "
            "a worker for `queue` runs. False otherwise."
        )
    )

    class Meta:
        model = AbstractJob
        fields = [
            "id",
            "url",
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
            "queue",
            "sent_at",
            "resend_count",
            "waiting_for_worker",
        ]
        read_only_fields = fields

    def get_queue(self, job: AbstractJob) -> str:
        return queue_for_task(job.task_name)

    def get_waiting_for_worker(self, job: AbstractJob) -> bool:
        return waits_for_worker(job, self._live_queues())

    def _live_queues(self) -> LiveQueues:
        """The queues some live worker consumes, read once per response: a page of jobs shares them
        through its root serializer, and only reads them when one of its jobs is queued."""
        root = self.root
        if not hasattr(root, "_live_queues_cache"):
            root._live_queues_cache = LiveQueues()
        return root._live_queues_cache


# Ids are BigAutoField: a larger number names nothing, and SQLite cannot even bind it (`id IN (...)`).
MAX_OBJECT_ID = 2**63 - 1


class ObjectIdField(serializers.IntegerField):
    """An object id in a request body: 1 to MAX_OBJECT_ID."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_OBJECT_ID)
        super().__init__(**kwargs)


class ImageIdsSerializer(StrictSerializer):
    image_ids = serializers.ListField(child=ObjectIdField(), allow_empty=False, max_length=5000)
