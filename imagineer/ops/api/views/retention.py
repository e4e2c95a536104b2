"""Purge runs over the API (admin, read-only): a retention policy's schedule or "Run now" in the admin
starts them; the API lets a client follow one like any other job."""

from rest_framework import mixins, viewsets

from imagineer.core.permissions import IsAdmin
from imagineer.ops.api.serializers.retention import PurgeRunSerializer
from imagineer.ops.models import PurgeRun


class PurgeRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Purge runs, newest first (admin): what each removed, or would have (dry run)."""

    serializer_class = PurgeRunSerializer
    permission_classes = [IsAdmin]
    queryset = PurgeRun.objects.all()
    filterset_fields = ["status", "policy", "target"]
