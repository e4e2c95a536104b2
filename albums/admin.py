"""The operator console for albums and images, and what apps above albums add to their pages.

albums is the ground floor: it imports nothing of generation, labeling or training. Those apps add
their pieces to the image and album pages from their own admin modules: labeling its label inline,
NSFW flag history and labeling actions, training its "Train a LoRA" action (through
image_admin_extensions and album_admin_extensions below), and generation the set-template section
and the "Generate this set" page (its SetTemplateAlbumAdmin extends AlbumAdmin and takes its place).
"""

from collections.abc import Callable
from operator import itemgetter

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR, InlineModelAdmin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from albums import services
from albums.models import CHECK_OPEN, Album, AlbumImage, Image, NsfwCheck, ThumbnailJob
from imagineer.core.admin import JobAdmin
from imagineer.core.admin_helpers import thumbnail_tag


class AdminExtensions:
    """Inlines and actions that apps above albums add to one of its admin pages.

    An app adds them when Django's admin autodiscovery imports its admin module (as NetBox plugins
    register their extensions); the page reads them per request, so every app's admin module has
    been imported by then, whatever the INSTALLED_APPS order.
    """

    def __init__(self) -> None:
        self.inlines: list[type[InlineModelAdmin]] = []
        self._actions: list[tuple[int, str, Callable]] = []

    def add_inline(self, inline: type[InlineModelAdmin]) -> None:
        """Show `inline` on the page of a stored object, after the page's own inlines."""
        self.inlines.append(inline)

    def add_action(self, action: Callable, *, name: str, order: int = 0) -> None:
        """Offer `action` (an @admin.action function) as `name`, after the page's own actions.

        Lower `order` first; actions of equal order keep the order they were added in.
        """
        self._actions.append((order, name, action))

    def actions_for(self, model_admin: admin.ModelAdmin, request) -> dict[str, tuple[Callable, str, str]]:
        """The added actions this user may run, shaped as ModelAdmin.get_actions returns them."""
        if IS_POPUP_VAR in request.GET:  # as Django's own: a popup offers no actions
            return {}
        actions = {}
        for _, name, action in sorted(self._actions, key=itemgetter(0)):
            permissions = getattr(action, "allowed_permissions", ())
            if all(getattr(model_admin, f"has_{permission}_permission")(request) for permission in permissions):
                actions[name] = (action, name, action.short_description)
        return actions


image_admin_extensions = AdminExtensions()
album_admin_extensions = AdminExtensions()


class NsfwCheckFilter(admin.SimpleListFilter):
    """The NSFW check's state, with "not checked or check failed" for the images nobody else sees yet."""

    title = "NSFW check"
    parameter_name = "nsfw_check"
    UNSETTLED = "unsettled"

    def lookups(self, request, model_admin):
        return [(self.UNSETTLED, "Not checked or check failed"), *NsfwCheck.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.UNSETTLED:
            return queryset.filter(nsfw_check__in=CHECK_OPEN)
        if value in NsfwCheck.values:
            return queryset.filter(nsfw_check=value)
        return queryset


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
        "nsfw_rating",
        "is_public",
        "nsfw_check",
        "source",
        "created_at",
    ]
    list_display_links = ["preview", "id"]
    list_filter = [
        NsfwCheckFilter,
        "is_nsfw",
        "nsfw_flag_source",
        "nsfw_rating",
        "is_public",
        "source",
        "format",
        "albums",
    ]
    search_fields = ["prompt", "negative_prompt", "sha256", "original_filename"]
    readonly_fields = [
        # Next to is_nsfw: who decided it last, and the latest machine rating.
        "nsfw_flag_source",
        "nsfw_rating",
        # The NSFW check (labeling runs it): pending or failed images are shown to their owner and admins only.
        "nsfw_check",
        "nsfw_check_attempts",
        "nsfw_check_at",
        "nsfw_check_error",
        "large_preview",
        "file_link",
        "sha256",
        "width",
        "height",
        "format",
        "file_size",
        "original_filename",
        "source",
        "source_url",
        "phash",
        "created_by",
        "created_at",
        "updated_at",
    ]
    exclude = ["file", "thumbnail"]  # storage names stay internal; the file is reached by its URL
    inlines = [ImageAlbumInline]
    actions = [
        "mark_nsfw",
        "mark_not_nsfw",
        "release_nsfw_flags",
        "make_public",
        "make_private",
        "rebuild_thumbnails",
    ]
    date_hierarchy = "created_at"
    list_per_page = 50

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj)

    @admin.display(description="Preview")
    def large_preview(self, obj):
        return thumbnail_tag(obj, 256)

    def get_inlines(self, request, obj):
        # Other apps' inlines (labels, NSFW flag history) are about a stored image.
        return [*self.inlines, *image_admin_extensions.inlines] if obj is not None else self.inlines

    def get_actions(self, request):
        return {**super().get_actions(request), **image_admin_extensions.actions_for(self, request)}

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed, through the service: a changed is_nsfw becomes a recorded
        # manual flag, and a rating a labeler stored since the page was opened is not written back.
        model_fields = {field.name for field in Image._meta.concrete_fields}
        fields = {name: getattr(obj, name) for name in form.changed_data if name in model_fields}
        services.update_image(obj, user=request.user, **fields)

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
        updated = services.set_image_flags(list(queryset.values_list("pk", flat=True)), user=request.user, **flags)
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

    @admin.action(description="Let machine ratings decide NSFW again")
    def release_nsfw_flags(self, request, queryset):
        image_ids = list(queryset.values_list("pk", flat=True))
        released = services.release_manual_nsfw_flags(image_ids)
        self.message_user(
            request,
            f"{released} of {len(image_ids)} selected image(s) had a manual NSFW flag; machine ratings decide "
            "them again (the latest rating, where there is one, applies now).",
            messages.SUCCESS,
        )


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "album_type", "is_public", "source_type", "image_count", "created_at"]
    list_filter = ["album_type", "is_public", "source_type", "is_set_template"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [AlbumImageInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "album_type", "is_public"]}),
        ("Provenance", {"fields": ["source_type", "source_id", "created_by", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_image_count=Count("album_images"))

    def get_actions(self, request):
        return {**super().get_actions(request), **album_admin_extensions.actions_for(self, request)}

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
