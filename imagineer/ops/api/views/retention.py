"""Purge runs over the API (admin): a retention policy's schedule or "Run now" in the admin
starts them; the API lets a client follow, cancel and retry one like any other job."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from imagineer.core.responses import accepted, accepted_schema
from imagineer.ops.api.serializers.retention import PurgeRunSerializer
from imagineer.ops.models import PurgeRun


class PurgeRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Purge runs, newest first (admin): what each removed, or would have (dry run)."""

    serializer_class = PurgeRunSerializer
    permission_classes = [IsAdmin]
    queryset = PurgeRun.objects.all()
    filterset_fields = ["status", "policy", "target"]

    @extend_schema(request=None, responses=PurgeRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued purge run at once; a running one stops at its next progress report."""
        return Response(self.get_serializer(jobs.cancel_job(self.get_object())).data)

    @accepted_schema(PurgeRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled purge run again (as the admin's Retry), with its policy's settings of then."""
        return accepted(jobs.retry_job(self.get_object()), PurgeRunSerializer, request)
