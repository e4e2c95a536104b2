from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from albums import services
from albums.models import Album, AlbumImage, Image, ThumbnailJob
from generation import services as generation_services
from generation.api.serializers import SetRunCreateSerializer
from generation.models import DiffusionModel
from generation.sets import SetFormatError, items_to_csv, parse_items_csv, render_set_prompt
from imagineer.core.admin import JobAdmin
from imagineer.core.errors import ImagineerError

PROMPT_PREVIEW_ROWS = 5


def thumbnail_tag(image: Image, size: int = 64) -> str:
    if image is None or not image.pk:
        return "-"
    url = reverse("image-thumbnail", args=[image.pk])
    return format_html('<img src="{}" alt="" style="max-width:{}px;max-height:{}px" loading="lazy">', url, size, size)


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def add_serializer_errors(form: forms.Form, errors: dict) -> None:
    """Show the errors of an API serializer that checked `form`'s data on the form itself.

    Admin forms validate through the API's serializers so both apply the same limits.
    """
    for name, detail in errors.items():
        form.add_error(name if name in form.fields else None, _messages(detail))


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


class AlbumAdminForm(forms.ModelForm):
    """The album form; a set template's rows are edited as CSV text, the format sets are written in."""

    items_csv = forms.CharField(
        label="Template items (CSV)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100, "style": "font-family: monospace"}),
        help_text="One image per row. The header names the columns the prompt template uses as {column}.",
    )

    class Meta:
        model = Album
        # Every editable field but template_items, which is edited through items_csv.
        fields = [
            "name", "slug", "description", "album_type", "is_public", "source_type", "source_id", "is_set_template",
            "base_prompt", "prompt_template", "style_suffix", "example_theme", "width", "height", "negative_prompt",
            "loras", "default_model",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("items_csv", items_to_csv(self.instance.template_items))

    def clean_items_csv(self) -> list[dict[str, str]]:
        text = self.cleaned_data["items_csv"]
        if not text.strip():
            return []
        try:
            return parse_items_csv(text)
        except SetFormatError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def save(self, commit=True):
        # Only an edited CSV replaces the rows: an untouched one is left exactly as stored.
        if "items_csv" in self.changed_data:
            self.instance.template_items = self.cleaned_data["items_csv"]
        return super().save(commit)


class SetRunStartForm(forms.Form):
    """The "Generate this set" form: checked with the API's limits, started by services.start_set_run."""

    OVERRIDES = ("steps", "seed", "width", "height")

    theme = forms.CharField(max_length=500, help_text='Every prompt gets "Art style: " and this theme.')
    album_name = forms.CharField(max_length=200, required=False, help_text="Empty: template · theme · date.")
    model = forms.ModelChoiceField(
        queryset=DiffusionModel.objects.filter(enabled=True),
        required=False,
        empty_label="The template's model (else the default model)",
    )
    steps = forms.IntegerField(required=False, help_text="Empty: the model's default.")
    seed = forms.IntegerField(required=False, help_text="Empty: a random seed. Row i uses seed + i.")
    width = forms.IntegerField(required=False, help_text="Empty: the template's size, else the model's.")
    height = forms.IntegerField(required=False, help_text="Empty: the template's size, else the model's.")
    batch_size = forms.IntegerField(required=False, help_text="Images per forward pass. Empty: the server's setting.")

    def __init__(self, *args, template: Album, **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        given = {name: value for name, value in cleaned.items() if value not in (None, "")}
        if "model" in given:
            given["model"] = given["model"].name
        serializer = SetRunCreateSerializer(data=given, context={"template": self.template})
        try:
            valid = serializer.is_valid()
        except ImagineerError as exc:  # e.g. no model named anywhere and no default model registered
            self.add_error(None, exc.message)
            return cleaned
        if not valid:
            add_serializer_errors(self, serializer.errors)
            return cleaned
        self.run_parameters = serializer.validated_data
        return cleaned

    def start(self, user):
        parameters = self.run_parameters
        return generation_services.start_set_run(
            self.template,
            user=user,
            theme=parameters["theme"],
            album_name=parameters.get("album_name", ""),
            model=parameters.get("model"),
            batch_size=parameters.get("batch_size"),
            overrides={name: parameters[name] for name in self.OVERRIDES if name in parameters},
        )


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    form = AlbumAdminForm
    list_display = ["name", "slug", "album_type", "is_public", "source_type", "image_count", "created_at"]
    list_filter = ["album_type", "is_public", "source_type", "is_set_template"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_by", "created_at", "updated_at", "generate_link", "prompt_preview"]
    inlines = [AlbumImageInline]
    set_template_fields = [
        "is_set_template", "generate_link", "base_prompt", "prompt_template", "style_suffix", "example_theme",
        ("width", "height"), "negative_prompt", "loras", "default_model", "items_csv", "prompt_preview",
    ]  # fmt: skip

    def get_fieldsets(self, request, obj=None):
        # Open for set templates: it is what the operator came to edit, and errors in a closed
        # (collapsed) fieldset would go unseen.
        template_classes = [] if obj is not None and obj.is_set_template else ["collapse"]
        return [
            (None, {"fields": ["name", "slug", "description", "album_type", "is_public"]}),
            ("Provenance", {"fields": ["source_type", "source_id", "created_by", "created_at", "updated_at"]}),
            ("Set template", {"classes": template_classes, "fields": self.set_template_fields}),
        ]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_image_count=Count("album_images"))

    @admin.display(description="Images", ordering="_image_count")
    def image_count(self, obj):
        return obj._image_count

    @admin.display(description="Prompt preview")
    def prompt_preview(self, obj):
        """The first rows' prompts as a run would send them, from the saved template and example theme."""
        rows = obj.template_items[:PROMPT_PREVIEW_ROWS] if obj.pk else []
        if not rows:
            return "-"
        prompts = ((render_set_prompt(obj, row, obj.example_theme),) for row in rows)
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", prompts))

    @admin.display(description="Generate")
    def generate_link(self, obj):
        if not (obj.pk and obj.is_set_template):
            return "Only a saved set template can be generated."
        url = reverse("admin:albums_album_generate", args=[obj.pk])
        return format_html('<a class="button" href="{}">Generate this set</a>', url)

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        # Ahead of the default patterns, whose "<path:object_id>/" would take ".../generate/".
        generate = path(
            "<path:object_id>/generate/", self.admin_site.admin_view(self.generate_view), name="albums_album_generate"
        )
        return [generate, *super().get_urls()]

    def generate_view(self, request, object_id):
        """Start a set run from a set template, then show it on its SetRun admin page."""
        template = self.get_object(request, unquote(object_id))
        if template is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        if not template.is_set_template:
            self.message_user(
                request, f"'{template.name}' is not a set template: there is nothing to generate.", messages.ERROR
            )
            return redirect("admin:albums_album_change", template.pk)
        data = request.POST if request.method == "POST" else None
        form = SetRunStartForm(data, template=template, initial={"theme": template.example_theme})
        if form.is_valid():
            try:
                run = form.start(request.user)
            except ImagineerError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Started set run #{run.pk}: {run.total_items} images into the album '{run.album_name}'.",
                    messages.SUCCESS,
                )
                return redirect("admin:generation_setrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate set: {template.name}",
            "opts": self.opts,
            "original": template,
            "row_count": len(template.template_items),
            "adminform": helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}),
            "errors": helpers.AdminErrorList(form, []),
        }
        return TemplateResponse(request, "admin/generation/generate_set.html", context)


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
