from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from albums import services
from albums.models import Album, AlbumImage, Image, ThumbnailJob
from imagineer.core.admin import JobAdmin


def thumbnail_tag(image: Image, size: int = 64) -> str:
    if image is None or not image.pk:
        return "-"
    url = reverse("image-thumbnail", args=[image.pk])
    return format_html('<img src="{}" alt="" style="max-width:{}px;max-height:{}px" loading="lazy">', url, size, size)


class AlbumImageInline(admin.TabularInline):
    model = AlbumImage
    extra = 0
    fields = ["preview", "image", "sort_order", "added_by", "created_at"]
    readonly_fields = ["preview", "added_by", "created_at"]
    raw_id_fields = ["image"]
    ordering = ["sort_order", "id"]

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj.image) if obj.image_id else "-"


class ImageAlbumInline(admin.TabularInline):
    model = AlbumImage
    extra = 0
    fields = ["album", "sort_order"]
    raw_id_fields = ["album"]
    verbose_name_plural = "Albums"


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "preview",
        "id",
        "short_prompt",
        "format",
        "width",
        "height",
        "is_nsfw",
        "is_public",
        "source",
        "created_at",
    ]
    list_display_links = ["preview", "id"]
    list_filter = ["is_nsfw", "is_public", "source", "format", "albums"]
    search_fields = ["prompt", "negative_prompt", "sha256", "original_filename"]
    readonly_fields = [
        "large_preview",
        "file_link",
        "sha256",
        "width",
        "height",
        "format",
        "file_size",
        "original_filename",
        "source",
        "created_by",
        "created_at",
        "updated_at",
    ]
    exclude = ["file", "thumbnail"]  # storage names stay internal; the file is reached by its URL
    inlines = [ImageAlbumInline]
    actions = ["mark_nsfw", "mark_not_nsfw", "make_public", "make_private", "rebuild_thumbnails"]
    date_hierarchy = "created_at"
    list_per_page = 50

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj)

    @admin.display(description="Preview")
    def large_preview(self, obj):
        return thumbnail_tag(obj, 256)

    @admin.display(description="File")
    def file_link(self, obj):
        if not obj.pk:
            return "-"
        return format_html(
            '<a href="{}" target="_blank">open image #{}</a>', reverse("image-file", args=[obj.pk]), obj.pk
        )

    @admin.display(description="Prompt")
    def short_prompt(self, obj):
        return (obj.prompt[:80] + "…") if len(obj.prompt) > 80 else obj.prompt

    def _set_flags(self, request, queryset, **flags):
        updated = services.set_image_flags(list(queryset.values_list("pk", flat=True)), **flags)
        self.message_user(request, f"Updated {updated} image(s).", messages.SUCCESS)

    @admin.action(description="Mark selected images NSFW")
    def mark_nsfw(self, request, queryset):
        self._set_flags(request, queryset, is_nsfw=True)

    @admin.action(description="Mark selected images not NSFW")
    def mark_not_nsfw(self, request, queryset):
        self._set_flags(request, queryset, is_nsfw=False)

    @admin.action(description="Make selected images public")
    def make_public(self, request, queryset):
        self._set_flags(request, queryset, is_public=True)

    @admin.action(description="Make selected images private")
    def make_private(self, request, queryset):
        self._set_flags(request, queryset, is_public=False)

    @admin.action(description="Rebuild thumbnails (background job)")
    def rebuild_thumbnails(self, request, queryset):
        job = services.start_thumbnail_rebuild(list(queryset.values_list("pk", flat=True)), user=request.user)
        self.message_user(request, f"Queued thumbnail job #{job.pk}.", messages.SUCCESS)


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "album_type", "is_public", "source_type", "image_count", "created_at"]
    list_filter = ["album_type", "is_public", "source_type"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [AlbumImageInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_image_count=Count("album_images"))

    @admin.display(description="Images", ordering="_image_count")
    def image_count(self, obj):
        return obj._image_count

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(AlbumImage)
class AlbumImageAdmin(admin.ModelAdmin):
    list_display = ["album", "preview", "image", "sort_order", "added_by", "created_at"]
    list_filter = ["album"]
    raw_id_fields = ["album", "image"]
    ordering = ["album", "sort_order", "id"]

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj.image)


@admin.register(ThumbnailJob)
class ThumbnailJobAdmin(JobAdmin):
    list_display = [*JobAdmin.list_display, "rebuilt_count", "failed_count"]
