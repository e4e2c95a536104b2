"""Scrape jobs in admin: the list with counters, a read-only page per job, and "Add" to start one."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from imagineer.core.admin import JobAdmin
from training.models import ScrapeJob
from training.services import scrapes


class ScrapeStartForm(forms.ModelForm):
    """Start a scrape: the URL, the two usual limits, and any other override as JSON."""

    url = forms.CharField(max_length=2000, help_text="The start page: http or https.")
    name = forms.CharField(max_length=200, required=False, help_text="Also the album's name. Empty: from the host.")
    max_depth = forms.IntegerField(required=False, help_text="Empty: the runtime config's default.")
    max_images = forms.IntegerField(required=False, help_text="Empty: the runtime config's default.")
    overrides_json = forms.CharField(
        label="Other overrides",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='JSON, keys of the scraping config, e.g. {"same_host_only": false, "min_width": 512}.',
    )

    class Meta:
        model = ScrapeJob
        fields = ["name"]

    def clean(self):
        data = super().clean()
        try:
            overrides = json.loads(data.get("overrides_json") or "{}")
        except json.JSONDecodeError as exc:
            raise forms.ValidationError({"overrides_json": f"Not valid JSON: {exc.msg}."}) from None
        if not isinstance(overrides, dict):
            raise forms.ValidationError({"overrides_json": "Must be a JSON object."})
        for key in ("max_depth", "max_images"):
            if data.get(key) is not None:
                overrides[key] = data[key]
        try:
            data["start_url"] = scrapes.check_start_url(data.get("url") or "")
            scrapes.resolve_scrape_config(overrides)
        except scrapes.ScrapeSettingsInvalid as exc:
            errors = {}
            for key, reason in exc.details["fields"].items():
                field = key if key in ("url", "max_depth", "max_images") else "overrides_json"
                errors.setdefault(field, []).append(reason if field != "overrides_json" else f"{key}: {reason}")
            raise forms.ValidationError(errors) from None
        data["overrides"] = overrides
        return data


@admin.register(ScrapeJob)
class ScrapeJobAdmin(JobAdmin):
    list_display = [
        "id",
        "name",
        "start_url",
        "status",
        "progress_display",
        "pages_fetched",
        "images_discovered",
        "images_kept",
        "album_link",
        "created_by",
        "created_at",
    ]
    list_display_links = ["id", "name"]
    list_select_related = ["album", "created_by"]
    search_fields = ["name", "start_url"]

    def has_add_permission(self, request):
        return request.user.has_perm("training.add_scrapejob")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return ScrapeStartForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["url", "name", "max_depth", "max_images", "overrides_json"]
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*super().get_readonly_fields(request, obj), "album_link", "rejected_table"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": self.get_fields(request)})]
        counters = [
            "pages_fetched",
            "pages_failed",
            "images_discovered",
            "images_downloaded",
            "images_kept",
            "rejected_table",
        ]
        job_fields = [
            "name",
            "start_url",
            "status",
            "progress_display",
            "progress_message",
            "error_message",
            "album_link",
        ]
        placed = {*counters, *job_fields, "rejected", "album", "config", "overrides"}
        lifecycle = [name for name in super().get_readonly_fields(request, obj) if name not in placed]
        return [
            (None, {"fields": job_fields}),
            ("Counters", {"fields": counters}),
            ("Config", {"classes": ["collapse"], "fields": ["overrides", "config"]}),
            ("Lifecycle", {"classes": ["collapse"], "fields": lifecycle}),
        ]

    def save_model(self, request, obj, form, change):
        # A new job goes through the service (validated config, queued after commit), not obj.save().
        job = scrapes.start_scrape_job(
            url=form.cleaned_data["start_url"],
            name=form.cleaned_data.get("name") or "",
            overrides=form.cleaned_data["overrides"],
            user=request.user,
        )
        obj.pk, obj.name, obj.status = job.pk, job.name, job.status

    def save_related(self, request, form, formsets, change):
        pass  # the job has no many-to-many fields, and the form's object was never saved itself

    @admin.display(description="Album")
    def album_link(self, obj):
        if obj.album_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:albums_album_change", args=[obj.album_id]), obj.album)

    @admin.display(description="Rejected")
    def rejected_table(self, obj):
        if not obj.rejected:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", sorted(obj.rejected.items()))
        return format_html("<table><tr><th>reason</th><th>count</th></tr>{}</table>", rows)
