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
from albums.models import Album, AlbumImage, Image, NsfwFlagChange, ThumbnailJob
from generation import services as generation_services
from generation.api.serializers import SetRunCreateSerializer
from generation.models import DiffusionModel
from generation.sets import SetFormatError, items_to_csv, parse_items_csv, render_set_prompt
from imagineer.core.admin import JobAdmin
from imagineer.core.errors import ImagineerError
from labeling import services as labeling_services
from labeling.api.serializers import LabelWriteSerializer
from labeling.labelers import check_labeler
from labeling.models import Label, LabelerName, LabelingRun, LabelType

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


# --- Labels ------------------------------------------------------------------------------------
# The label form lives here rather than in labeling/admin.py because labeling.admin imports this
# module (thumbnail_tag); the Label pages there use the same form.


def label_is_editable(label: Label) -> bool:
    """Scraped labels (alt text, titles, page captions) are kept as the page had them."""
    return label.pk is None or label.label_type in labeling_services.MANUAL_LABEL_TYPES


class LabelForm(forms.ModelForm):
    """A label as a person writes it: checked by the API's serializer and the label services' own
    check (type, length, duplicate), so a refusal shows on the form; `write` stores it through them.
    """

    label_fields: dict | None = None  # the checked text, label_type and confidence, when changed

    class Meta:
        model = Label
        fields = ["text", "label_type", "confidence"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not label_is_editable(self.instance):
            for field in self.fields.values():
                field.disabled = True  # shown as it is; it can still be deleted
        elif "label_type" in self.fields:
            self.fields["label_type"].choices = [
                (value, name) for value, name in LabelType.choices if value in labeling_services.MANUAL_LABEL_TYPES
            ]

    def clean(self):
        cleaned = super().clean()
        self.label_fields = None
        if self.errors or not self.has_changed():
            return cleaned
        serializer = LabelWriteSerializer(
            data={name: cleaned.get(name) for name in ("text", "label_type", "confidence")}
        )
        if not serializer.is_valid():
            add_serializer_errors(self, serializer.errors)
            return cleaned
        fields = dict(serializer.validated_data)
        # An inline row knows its image (the formset sets it); the label page's add form picks one.
        image = cleaned.get("image")
        image_id = self.instance.image_id or (image.pk if image else None)
        if image_id is not None:
            try:
                fields["text"] = labeling_services.check_manual_label(
                    image_id, text=fields["text"], label_type=fields["label_type"], label_id=self.instance.pk
                )
            except ImagineerError as exc:
                self.add_error(None, exc.message)
                return cleaned
        self.label_fields = fields
        return cleaned

    def write(self, image: Image, *, user) -> Label:
        """Create the label, or update it, through the label services (ImagineerError when refused)."""
        if self.instance.pk is None:
            return labeling_services.create_manual_label(image, user=user, **self.label_fields)
        # From the database: the form's instance already holds the new values, and update_label
        # decides from the stored source whether a machine label becomes a person's.
        label = Label.objects.filter(pk=self.instance.pk).first()
        if label is None:
            raise ImagineerError(f"Label #{self.instance.pk} was deleted meanwhile.", code="not_found")
        return labeling_services.update_label(label, user=user, **self.label_fields)


class LabelInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        # Rows of this one save against each other: the same (type, text) twice keeps neither.
        seen: dict[tuple[str, str], LabelForm] = {}
        for form in self.forms:
            if not form.label_fields or (self.can_delete and self._should_delete_form(form)):
                continue
            key = (form.label_fields["label_type"], form.label_fields["text"])
            if key in seen:
                form.add_error(None, f"The {key[0]} label '{key[1][:80]}' is on this page twice.")
                seen[key].add_error(None, f"The {key[0]} label '{key[1][:80]}' is on this page twice.")
            seen.setdefault(key, form)


class LabelInline(admin.TabularInline):
    """The image's labels; new and edited rows are written by labeling.services (ImageAdmin.save_formset)."""

    model = Label
    form = LabelForm
    formset = LabelInlineFormSet
    extra = 1
    fields = ["text", "label_type", "confidence", "source", "source_model", "created_by", "created_at"]
    readonly_fields = ["source", "source_model", "created_by", "created_at"]
    ordering = ["label_type", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


class NsfwFlagChangeInline(admin.TabularInline):
    """Every change of is_nsfw: to what, by whom or by which labeler's rating, and when. Read only."""

    model = NsfwFlagChange
    extra = 0
    fields = ["created_at", "is_nsfw", "source", "changed_by", "labeler", "rating", "labeling_run"]
    readonly_fields = fields
    can_delete = False
    verbose_name = "NSFW flag change"
    verbose_name_plural = "NSFW flag history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Labeling run")
    def labeling_run(self, obj):
        return labeling_run_link(obj.labeling_run_id)


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
        "source",
        "created_at",
    ]
    list_display_links = ["preview", "id"]
    list_filter = ["is_nsfw", "nsfw_flag_source", "nsfw_rating", "is_public", "source", "format", "albums"]
    search_fields = ["prompt", "negative_prompt", "sha256", "original_filename"]
    readonly_fields = [
        # Next to is_nsfw: who decided it last, and the latest machine rating.
        "nsfw_flag_source",
        "nsfw_rating",
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
    inlines = [ImageAlbumInline, LabelInline, NsfwFlagChangeInline]
    actions = [
        "mark_nsfw",
        "mark_not_nsfw",
        "release_nsfw_flags",
        "make_public",
        "make_private",
        "rebuild_thumbnails",
        "label_with_claude",
        "detect_nsfw_locally",
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
        # Labels are written for a stored image, and a new one has no flag history yet.
        return self.inlines if obj is not None else [ImageAlbumInline]

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed, through the service: a changed is_nsfw becomes a recorded
        # manual flag, and a rating a labeler stored since the page was opened is not written back.
        model_fields = {field.name for field in Image._meta.concrete_fields}
        fields = {name: getattr(obj, name) for name in form.changed_data if name in model_fields}
        services.update_image(obj, user=request.user, **fields)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Label:
            super().save_formset(request, form, formset, change)
            return
        # Deletions first (a row may then take a deleted row's text), then writes through the services.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        deleted = [f for f in formset.forms if formset.can_delete and formset._should_delete_form(f)]
        for label_form in deleted:
            if label_form.instance.pk is not None:
                formset.deleted_objects.append(label_form.instance)
                formset.delete_existing(label_form.instance)
        for label_form in formset.forms:
            if label_form in deleted or not label_form.label_fields:
                continue
            is_new = label_form.instance.pk is None
            try:
                label = label_form.write(formset.instance, user=request.user)
            except ImagineerError as exc:  # written by someone else since the page was checked
                self.message_user(request, exc.message, messages.ERROR)
                continue
            if is_new:
                formset.new_objects.append(label)
            else:
                formset.changed_objects.append((label, label_form.changed_data))

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

    def _start_labeling(self, request, queryset, labeler: str):
        try:
            run = labeling_services.start_labeling_run(
                image_ids=list(queryset.values_list("pk", flat=True)), labeler=labeler, user=request.user
            )
        except ImagineerError as exc:  # no API key, everything already labeled, queue unreachable
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, labeling_run_message(run), messages.SUCCESS)

    @admin.action(description="Label with Claude (background job)")
    def label_with_claude(self, request, queryset):
        self._start_labeling(request, queryset, LabelerName.CLAUDE)

    @admin.action(description="Detect NSFW locally (NudeNet, background job)")
    def detect_nsfw_locally(self, request, queryset):
        self._start_labeling(request, queryset, LabelerName.NUDENET)


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
    actions = ["label_with_claude", "detect_nsfw_locally", "train_lora"]
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

    def _start_labeling(self, request, queryset, labeler: str):
        """One labeling run per album; an album that cannot be labeled is named in an error message."""
        try:
            check_labeler(labeler)
        except ImagineerError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        for album in queryset:
            try:
                run = labeling_services.start_labeling_run(album=album, labeler=labeler, user=request.user)
            except (labeling_services.AlbumEmpty, labeling_services.NothingToLabel) as exc:
                self.message_user(request, exc.message, messages.ERROR)  # these name the album
            except ImagineerError as exc:
                self.message_user(request, f"Album '{album.name}' was not labeled: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, labeling_run_message(run, f" of album '{album.name}'"), messages.SUCCESS)

    @admin.action(description="Label with Claude (background job per album)")
    def label_with_claude(self, request, queryset):
        self._start_labeling(request, queryset, LabelerName.CLAUDE)

    @admin.action(description="Detect NSFW locally (NudeNet, background job per album)")
    def detect_nsfw_locally(self, request, queryset):
        self._start_labeling(request, queryset, LabelerName.NUDENET)

    @admin.action(description="Train a LoRA on the selected albums")
    def train_lora(self, request, queryset):
        """Open the training run form with these albums chosen (the run starts from there)."""
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return redirect(f"{reverse('admin:training_trainingrun_add')}?albums={ids}")

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
