"""Scrape jobs over the API (admin): start, list, detail with counters and album, cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from imagineer.core.responses import accepted, accepted_schema
from training.api.serializers.scrapes import ScrapeJobCreateSerializer, ScrapeJobSerializer
from training.models import ScrapeJob
from training.services import scrapes


class ScrapeJobViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Scrape jobs (admin). Each keeps the images of one site in a new private album."""

    permission_classes = [IsAdmin]
    queryset = ScrapeJob.objects.select_related("album")
    filterset_fields = ["status"]

    def get_serializer_class(self):
        return ScrapeJobCreateSerializer if self.action == "create" else ScrapeJobSerializer

    @accepted_schema(ScrapeJobSerializer, request=ScrapeJobCreateSerializer)
    def create(self, request, *args, **kwargs):
        """Queue a scrape (202); follow it at /api/training/scrapes/{id}/."""
        serializer = ScrapeJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = scrapes.start_scrape_job(user=request.user, **serializer.validated_data)
        return accepted(job, ScrapeJobSerializer, request)

    @extend_schema(request=None, responses=ScrapeJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued job at once, a running one after the page or download batch it is on."""
        return Response(self.get_serializer(jobs.cancel_job(self.get_object())).data)
