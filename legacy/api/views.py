"""Legacy import runs over the API (admin): `manage.py import_legacy_media` starts them;
the API lets a client follow, cancel and retry one like any other job."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from imagineer.core.responses import accepted, accepted_schema
from legacy.api.serializers import ImportRunSerializer
from legacy.models import ImportRun


class ImportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Import runs, newest first (admin): what each found, imported and skipped."""

    serializer_class = ImportRunSerializer
    permission_classes = [IsAdmin]
    queryset = ImportRun.objects.all()
    filterset_fields = ["status"]

    @extend_schema(request=None, responses=ImportRunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued import run at once; a running one stops at its next progress report."""
        return Response(self.get_serializer(jobs.cancel_job(self.get_object())).data)

    @accepted_schema(ImportRunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled import run again (as the admin's Retry): files already in are skipped."""
        return accepted(jobs.retry_job(self.get_object()), ImportRunSerializer, request)
