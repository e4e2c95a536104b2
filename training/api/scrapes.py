"""Scrape jobs over the API (admin): start, list, detail with counters and album, cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from imagineer.core import jobs
from imagineer.core.permissions import IsAdmin
from imagineer.core.serializers import JobSerializer, StrictSerializer
from training.models import ScrapeJob
from training.scraping import services

TOP_LEVEL_SETTINGS = ("max_depth", "max_images")


class ScrapeJobCreateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, help_text="The start page: http or https.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Also the album's name.")
    max_depth = serializers.IntegerField(required=False, help_text="Links followed from the start page (0: it only).")
    max_images = serializers.IntegerField(required=False, help_text="Images kept at most.")
    overrides = serializers.DictField(
        required=False, help_text="Any other key of the runtime config's scraping section, e.g. same_host_only."
    )

    def validate_url(self, value: str) -> str:
        try:
            return services.check_start_url(value)
        except services.ScrapeSettingsInvalid as exc:
            raise serializers.ValidationError(exc.details["fields"]["url"]) from None

    def validate(self, attrs):
        overrides = dict(attrs.get("overrides") or {})
        for key in TOP_LEVEL_SETTINGS:
            if key in attrs:
                if key in overrides:
                    raise serializers.ValidationError({key: ["Given both here and in overrides; give it once."]})
                overrides[key] = attrs[key]
        try:
            services.resolve_scrape_config(overrides)
        except services.ScrapeSettingsInvalid as exc:
            errors: dict = {}
            for key, reason in exc.details["fields"].items():
                if key in TOP_LEVEL_SETTINGS and key in attrs:
                    errors[key] = [reason]
                else:
                    errors.setdefault("overrides", {})[key] = [reason]
            raise serializers.ValidationError(errors) from None
        return {"url": attrs["url"], "name": attrs.get("name", ""), "overrides": overrides}


class ScrapeJobSerializer(JobSerializer):
    url = serializers.CharField(source="start_url", read_only=True)
    album_name = serializers.CharField(source="album.name", read_only=True, allow_null=True, default=None)

    class Meta(JobSerializer.Meta):
        model = ScrapeJob
        fields = [
            *JobSerializer.Meta.fields, "name", "url", "config", "overrides", "album", "album_name", "pages_fetched",
            "pages_failed", "images_discovered", "images_downloaded", "images_kept", "rejected",
        ]  # fmt: skip
        read_only_fields = fields


class ScrapeJobViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Scrape jobs (admin). Each keeps the images of one site in a new private album."""

    permission_classes = [IsAdmin]
    queryset = ScrapeJob.objects.select_related("album")
    filterset_fields = ["status"]

    def get_serializer_class(self):
        return ScrapeJobCreateSerializer if self.action == "create" else ScrapeJobSerializer

    @extend_schema(request=ScrapeJobCreateSerializer, responses={202: ScrapeJobSerializer})
    def create(self, request, *args, **kwargs):
        """Queue a scrape (202); follow it at /api/training/scrapes/{id}/."""
        serializer = ScrapeJobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.start_scrape_job(user=request.user, **serializer.validated_data)
        return Response(ScrapeJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=ScrapeJobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued job at once, a running one after the page or download batch it is on."""
        return Response(ScrapeJobSerializer(jobs.cancel_job(self.get_object())).data)
