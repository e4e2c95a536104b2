"""Shapes of `/api/training/scrapes/`: the start request (URL, limits, overrides checked against the
scraping config) and a job with its counters and album."""

from __future__ import annotations

from rest_framework import serializers

from imagineer.core.serializers import JobSerializer, StrictSerializer
from training.models import ScrapeJob
from training.services import scrapes

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
            return scrapes.check_start_url(value)
        except scrapes.ScrapeSettingsInvalid as exc:
            raise serializers.ValidationError(exc.details["fields"]["url"]) from None

    def validate(self, attrs):
        overrides = dict(attrs.get("overrides") or {})
        for key in TOP_LEVEL_SETTINGS:
            if key in attrs:
                if key in overrides:
                    raise serializers.ValidationError({key: ["Given both here and in overrides; give it once."]})
                overrides[key] = attrs[key]
        try:
            scrapes.resolve_scrape_config(overrides)
        except scrapes.ScrapeSettingsInvalid as exc:
            errors: dict = {}
            for key, reason in exc.details["fields"].items():
                if key in TOP_LEVEL_SETTINGS and key in attrs:
                    errors[key] = [reason]
                else:
                    errors.setdefault("overrides", {})[key] = [reason]
            raise serializers.ValidationError(errors) from None
        return {"url": attrs["url"], "name": attrs.get("name", ""), "overrides": overrides}


class ScrapeJobSerializer(JobSerializer):
    detail_url_name = "scrape-job-detail"
    start_url = serializers.CharField(read_only=True, help_text="Where the crawl started (the request's `url`).")
    album_name = serializers.CharField(source="album.name", read_only=True, allow_null=True, default=None)

    class Meta(JobSerializer.Meta):
        model = ScrapeJob
        fields = [
            *JobSerializer.Meta.fields,
            "name",
            "start_url",
            "config",
            "overrides",
            "album",
            "album_name",
            "pages_fetched",
            "pages_failed",
            "images_discovered",
            "images_downloaded",
            "images_kept",
            "rejected",
        ]
        read_only_fields = fields
