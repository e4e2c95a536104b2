"""Legacy import runs over the API (admin, read-only): `manage.py import_legacy_media` starts them;
the API lets a client follow one like any other job."""

from rest_framework import mixins, viewsets

from imagineer.core.permissions import IsAdmin
from legacy.api.serializers import ImportRunSerializer
from legacy.models import ImportRun


class ImportRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Import runs, newest first (admin): what each found, imported and skipped."""

    serializer_class = ImportRunSerializer
    permission_classes = [IsAdmin]
    queryset = ImportRun.objects.all()
    filterset_fields = ["status"]
