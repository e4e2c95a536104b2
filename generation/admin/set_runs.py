"""Set runs in admin: their progress and output albums (a run is started from its set template's page)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from generation.models import SetRun
from imagineer.core.admin import JobAdmin


@admin.register(SetRun)
class SetRunAdmin(JobAdmin):
    list_display = [
        "id",
        "template",
        "album_name",
        "theme",
        "status",
        "items",
        "failed_items",
        "output_album_link",
        "created_at",
    ]
    list_display_links = ["id", "album_name"]
    list_select_related = ["template", "output_album"]
    search_fields = ["album_name", "theme"]

    @admin.display(description="Items done")
    def items(self, obj):
        return f"{obj.completed_items}/{obj.total_items}"

    # The list's column; the run's page shows output_album itself, which the admin already links.
    @admin.display(description="Output album")
    def output_album_link(self, obj):
        if obj.output_album_id is None:
            return "-"  # made when the run starts
        url = reverse("admin:albums_album_change", args=[obj.output_album_id])
        return format_html('<a href="{}">{}</a>', url, obj.output_album)
