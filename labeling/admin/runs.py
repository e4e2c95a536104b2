"""Labeling runs in the console: their list and page (failures per image), and the links, messages
and failures table other pages use."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from imagineer.core.admin import JobAdmin
from labeling.models import LabelingRun

FAILURES_SHOWN = 500  # a run over a huge album can fail on every image; the API has the full list


def labeling_run_link(run_id: int | None) -> str:
    """A link to a labeling run's admin page, or "-"."""
    if run_id is None:
        return "-"
    url = reverse("admin:labeling_labelingrun_change", args=[run_id])
    return format_html('<a href="{}">Labeling run #{}</a>', url, run_id)


def labeling_run_message(run: LabelingRun, where: str = "") -> str:
    """The success message of a started run: names it and links to its admin page."""
    skipped = f"; {run.skipped_count} skipped, already labeled by {run.labeler}" if run.skipped_count else ""
    return format_html(
        'Started <a href="{}">labeling run #{}</a> ({}) over {} image(s){}{}.',
        reverse("admin:labeling_labelingrun_change", args=[run.pk]),
        run.pk,
        run.get_labeler_display(),
        len(run.image_ids),
        where,
        skipped,
    )


def failures_table(failures: list[dict] | None) -> str:
    """A job's failures per image (image link, error) as a table, the first FAILURES_SHOWN of them."""
    failures = failures or []
    if not failures:
        return "None"
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">Image #{}</a></td><td>{}</td></tr>',
        (
            (reverse("admin:albums_image_change", args=[failure["image_id"]]), failure["image_id"], failure["error"])
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


@admin.register(LabelingRun)
class LabelingRunAdmin(JobAdmin):
    list_display = [
        "id",
        "labeler",
        "album",
        "status",
        "progress_display",
        "succeeded_count",
        "failed_count",
        "skipped_count",
        "tokens",
        "created_by",
        "created_at",
    ]
    list_display_links = ["id", "labeler"]
    list_filter = [*JobAdmin.list_filter, "labeler"]
    list_select_related = ["album", "created_by"]
    exclude = ["failures"]  # shown as a table (failures_table), not as JSON

    def get_readonly_fields(self, request, obj=None):
        fields = [name for name in super().get_readonly_fields(request, obj) if name != "failures"]
        return [*fields, "progress_display", "failures_table"]

    def get_fieldsets(self, request, obj=None):
        run_fields = ["labeler", "source_model", "album", "force", "status", "progress_display", "error_message"]
        result_fields = [
            "succeeded_count",
            "failed_count",
            "skipped_count",
            "input_tokens",
            "output_tokens",
            "failures_table",
        ]
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
        return failures_table(obj.failures)
