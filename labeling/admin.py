"""The operator console for labeling: labels, the top tags, labeling run history.

Labels written here go through labeling.services (with the API's serializer checking the fields
first), so a label made in the console is normalised, a person's and never a duplicate, as one
made through the API. Figures on the top-tags page come from labeling.analytics.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from albums.admin import LabelForm, label_is_editable, labeling_run_link, thumbnail_tag
from albums.models import Album
from imagineer.core.admin import JobAdmin
from labeling import analytics
from labeling.models import TAG_TYPES, Label, LabelingRun, LabelType

FAILURES_SHOWN = 500  # a run over a huge album can fail on every image; the API has the full list


# --- Labels ------------------------------------------------------------------------------------


class TopTagsForm(forms.Form):
    album = forms.ModelChoiceField(
        queryset=Album.objects.filter(is_set_template=False).order_by("name"),
        required=False,
        empty_label="All albums",
    )
    label_type = forms.ChoiceField(
        choices=[("", "Tags and manual labels"), *((value, LabelType(value).label) for value in TAG_TYPES)],
        required=False,
    )
    limit = forms.TypedChoiceField(
        choices=[(n, n) for n in (10, 25, 50, 100)], coerce=int, required=False, empty_value=50, initial=50
    )
    offset = forms.IntegerField(min_value=0, max_value=analytics.MAX_OFFSET, required=False, widget=forms.HiddenInput)

    def filters(self) -> analytics.LabelFilters:
        data = self.cleaned_data
        return analytics.LabelFilters(
            label_type=data["label_type"] or None,
            album_id=data["album"].pk if data["album"] else None,
            limit=data["limit"],
            offset=data["offset"] or 0,
        )


class SourceModelFilter(admin.SimpleListFilter):
    """Machine labels by model. The choices come from the runs (a few rows), not from a DISTINCT
    over the whole label table, which would cost a full scan on every page load at a million labels.
    """

    title = "source model"
    parameter_name = "source_model"

    def lookups(self, request, model_admin):
        names = LabelingRun.objects.order_by("source_model").values_list("source_model", flat=True).distinct()
        return [(name, name) for name in names if name]

    def queryset(self, request, queryset):
        return queryset.filter(source_model=self.value()) if self.value() else queryset


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    form = LabelForm
    list_display = [
        "preview", "short_text", "label_type", "source", "source_model", "confidence", "image_link", "created_by",
        "created_at",
    ]  # fmt: skip
    list_display_links = ["preview", "short_text"]
    list_filter = ["label_type", "source", SourceModelFilter, "created_at"]
    list_select_related = ["image", "created_by"]
    # A number finds the labels of that image too (as text: the admin casts it, so no error for words).
    search_fields = ["text", "image__id__exact"]
    search_help_text = "Label text, or an image id."
    raw_id_fields = ["image"]
    list_per_page = 100

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["image", "text", "label_type", "confidence"]
        return ["preview", "image_link", "text", "label_type", "confidence", "source", "source_model", "run_link",
                "created_by", "created_at"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["preview", "image_link", "source", "source_model", "run_link", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        # Scraped labels are kept as the page had them: viewable and deletable, not editable.
        return super().has_change_permission(request, obj) and (obj is None or label_is_editable(obj))

    def save_model(self, request, obj, form, change):
        if not form.label_fields:  # nothing changed
            return
        # A duplicate written by someone else between the form's check and here is refused by the
        # unique constraint (an error page, nothing stored); the inline on the image page reports it.
        label = form.write(obj.image, user=request.user)
        # The admin goes on to log and redirect to `obj`: make it the label the service wrote.
        obj.pk = label.pk
        obj.refresh_from_db()

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj.image)

    @admin.display(description="Text", ordering="text")
    def short_text(self, obj):
        return Truncator(obj.text).chars(80)

    @admin.display(description="Image", ordering="image_id")
    def image_link(self, obj):
        url = reverse("admin:albums_image_change", args=[obj.image_id])
        return format_html('<a href="{}">Image #{}</a>', url, obj.image_id)

    @admin.display(description="Labeling run")
    def run_link(self, obj):
        return labeling_run_link(obj.run_id)

    def get_urls(self):
        top_tags = path("top-tags/", self.admin_site.admin_view(self.top_tags_view), name="labeling_label_top_tags")
        return [top_tags, *super().get_urls()]

    def top_tags_view(self, request):
        """The most used tags, with counts and shares, for all albums or one, from labeling.analytics."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TopTagsForm(request.GET)  # always bound: no parameters at all are the defaults
        top = analytics.top_tags(request.user, form.filters()) if form.is_valid() else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Top tags",
            "opts": self.opts,
            "form": form,
            "top": top,
            **(self._pages(request, top) if top is not None else {}),
        }
        return TemplateResponse(request, "admin/labeling/label/top_tags.html", context)

    @staticmethod
    def _pages(request, top) -> dict:
        """Query strings of the previous and next pages (the filters kept)."""

        def page(offset: int) -> str:
            query = request.GET.copy()
            query["offset"] = offset
            return "?" + query.urlencode()

        offset, limit = top["offset"], top["limit"]
        return {
            "first_rank": offset + 1,
            "previous_page": page(max(offset - limit, 0)) if offset else None,
            "next_page": page(offset + limit) if offset + limit < top["unique_tags"] else None,
        }


# --- Labeling runs -----------------------------------------------------------------------------


@admin.register(LabelingRun)
class LabelingRunAdmin(JobAdmin):
    list_display = [
        "id", "labeler", "album", "status", "progress_display", "succeeded_count", "failed_count", "skipped_count",
        "tokens", "created_by", "created_at",
    ]  # fmt: skip
    list_display_links = ["id", "labeler"]
    list_filter = [*JobAdmin.list_filter, "labeler"]
    list_select_related = ["album", "created_by"]
    exclude = ["failures"]  # shown as a table (failures_table), not as JSON

    def get_readonly_fields(self, request, obj=None):
        fields = [name for name in super().get_readonly_fields(request, obj) if name != "failures"]
        return [*fields, "progress_display", "failures_table"]

    def get_fieldsets(self, request, obj=None):
        run_fields = ["labeler", "source_model", "album", "force", "status", "progress_display", "error_message"]
        result_fields = ["succeeded_count", "failed_count", "skipped_count", "input_tokens", "output_tokens",
                         "failures_table"]  # fmt: skip
        placed = {*run_fields, *result_fields, "image_ids", "progress_current", "progress_total"}
        lifecycle = [name for name in super().get_readonly_fields(request, obj) if name not in placed | {"failures"}]
        return [
            (None, {"fields": run_fields}),
            ("Results", {"fields": result_fields}),
            ("Images", {"classes": ["collapse"], "fields": ["image_ids"]}),
            ("Lifecycle", {"classes": ["collapse"], "fields": lifecycle}),
        ]

    @admin.display(description="Tokens (in / out)")
    def tokens(self, obj):
        return f"{obj.input_tokens:,} / {obj.output_tokens:,}"

    @admin.display(description="Failures")
    def failures_table(self, obj):
        failures = obj.failures or []
        if not failures:
            return "None"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">Image #{}</a></td><td>{}</td></tr>',
            (
                (
                    reverse("admin:albums_image_change", args=[failure["image_id"]]),
                    failure["image_id"],
                    failure["error"],
                )
                for failure in failures[:FAILURES_SHOWN]
            ),
        )
        more = len(failures) - FAILURES_SHOWN
        note = format_html("<p>… and {} more (see the API).</p>", more) if more > 0 else ""
        return format_html(
            '<table class="labeling-failures"><thead><tr><th>Image</th><th>Error</th></tr></thead>'
            "<tbody>{}</tbody></table>{}",
            rows,
            note,
        )
