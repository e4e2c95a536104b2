"""The operator console for legacy imports: run history with counts and skipped files, provenance per file."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from imagineer.core.admin import JobAdmin
from imagineer.core.admin_helpers import thumbnail_tag
from legacy.models import ImportRun, LegacyAlbum, LegacyAsset

SKIPPED_SHOWN = 500  # the manifest has the full list


@admin.register(ImportRun)
class ImportRunAdmin(JobAdmin):
    list_display = [
        "id",
        "status",
        "mode",
        "files_seen",
        "imported_count",
        "already_present_count",
        "duplicate_count",
        "skipped_count",
        "links_outside_count",
        "albums_created",
        "created_at",
        "finished_at",
    ]
    list_display_links = ["id", "status"]
    exclude = ["skipped"]

    def get_readonly_fields(self, request, obj=None):
        return [*(name for name in super().get_readonly_fields(request, obj) if name != "skipped"), "skipped_table"]

    @admin.display(description="Skipped files")
    def skipped_table(self, obj):
        if not obj.skipped:
            return "None"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", ((s["path"], s["reason"]) for s in obj.skipped[:SKIPPED_SHOWN])
        )
        more = len(obj.skipped) - SKIPPED_SHOWN
        note = format_html("<p>… and {} more (see the manifest).</p>", more) if more > 0 else ""
        return format_html(
            "<table><thead><tr><th>File</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>{}", rows, note
        )


@admin.register(LegacyAsset)
class LegacyAssetAdmin(admin.ModelAdmin):
    list_display = ["preview", "root", "relative_path", "outcome", "image_link", "album", "run", "updated_at"]
    list_filter = ["outcome", "root", "run"]
    search_fields = ["relative_path", "sha256"]
    list_select_related = ["image", "album", "run"]
    readonly_fields = [f.name for f in LegacyAsset._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj.image)

    @admin.display(description="Image", ordering="image_id")
    def image_link(self, obj):
        if obj.image_id is None:
            return "-"
        return format_html(
            '<a href="{}">Image #{}</a>', reverse("admin:albums_image_change", args=[obj.image_id]), obj.image_id
        )


@admin.register(LegacyAlbum)
class LegacyAlbumAdmin(admin.ModelAdmin):
    list_display = ["key", "album", "created_by_run", "created_at"]
    search_fields = ["key", "album__name"]
    list_select_related = ["album", "created_by_run"]
    readonly_fields = ["key", "album", "created_by_run", "created_at"]

    def has_add_permission(self, request):
        return False
