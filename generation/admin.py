"""The operator console for generation: models, LoRAs, generation jobs and set runs.

The admin only shapes forms and lists. Registering a LoRA, starting or re-running a job go through
generation.services, and parameters are checked by the API's serializers, so the console and the
API apply the same checks and limits.
"""

from functools import partial
from operator import attrgetter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.files.storage import default_storage
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from albums.admin import add_serializer_errors, thumbnail_tag
from albums.models import Album
from generation import services
from generation.api.serializers import GenerationJobCreateSerializer
from generation.models import DiffusionModel, GenerationJob, Lora, ModelFamily, SetRun
from generation.pipeline.schedulers import SCHEDULERS
from imagineer.core.admin import JobAdmin
from imagineer.core.errors import ImagineerError

# --- Models ------------------------------------------------------------------------------------


@admin.register(DiffusionModel)
class DiffusionModelAdmin(admin.ModelAdmin):
    # `source` may be a path on the workers: the change form shows it, lists never do.
    list_display = ["name", "family", "source_type", "is_default", "enabled"]
    list_editable = ["enabled"]
    list_filter = ["family", "source_type", "enabled"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["make_default"]

    @admin.action(description="Make the selected model the default")
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model to make it the default.", messages.ERROR)
            return
        model = queryset.get()
        # Clear the old default first: at most one row may have is_default (one_default_model).
        with transaction.atomic():
            DiffusionModel.objects.filter(is_default=True).exclude(pk=model.pk).update(is_default=False)
            DiffusionModel.objects.filter(pk=model.pk).update(is_default=True)
        self.message_user(request, f"'{model.name}' is now the default model.", messages.SUCCESS)


# --- LoRAs -------------------------------------------------------------------------------------


LORA_PROVENANCE_FIELDS = [
    "provenance", "source_id", "source_note", "sha256", "size", "created_by", "created_at", "updated_at",
]  # fmt: skip


class LoraForm(forms.ModelForm):
    default_weight = forms.FloatField(min_value=-2, max_value=2, initial=0.6)  # the API's limits

    class Meta:
        model = Lora
        fields = ["name", "trigger_words", "default_weight", "description", "enabled"]


class LoraUploadForm(LoraForm):
    """The add form: the LoRA is created by registering the uploaded file, never typed in."""

    file = forms.FileField(help_text="A LoRA in .safetensors format; pickled files (.ckpt, .pt, .bin) are refused.")
    family = forms.ChoiceField(
        choices=[("", "Read it from the file"), *ModelFamily.choices],
        required=False,
        help_text="Needed only when the file's shapes do not tell.",
    )
    user = None  # the uploader, set per request by LoraAdmin.get_form

    class Meta(LoraForm.Meta):
        fields = ["name", "trigger_words", "default_weight"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:  # register nothing until the other fields are valid
            return cleaned
        # Registering is the check: the service reads the file's header before storing anything,
        # and its refusal (not a LoRA, a pickle, wrong family, too large) becomes the form's error.
        try:
            lora, created = services.register_uploaded_lora(
                cleaned["file"],
                name=cleaned["name"],
                family=cleaned["family"] or None,
                trigger_words=cleaned["trigger_words"],
                default_weight=cleaned["default_weight"],
                user=self.user,
            )
        except services.InvalidLora as exc:
            self.add_error("file", exc.message)
            return cleaned
        if not created:
            self.add_error("file", f"This file is already registered, as the LoRA '{lora.name}'.")
            return cleaned
        self.instance = lora  # the admin then logs the LoRA and redirects as for any added object
        return cleaned


@admin.register(Lora)
class LoraAdmin(admin.ModelAdmin):
    form = LoraForm
    list_display = ["name", "slug", "family", "provenance", "default_weight", "enabled", "size"]
    list_editable = ["enabled"]
    list_filter = ["family", "provenance", "enabled"]
    search_fields = ["name", "trigger_words"]
    # The file is never replaced here (a registered file is a checked one) and its storage name
    # stays internal; the editable fields are the ones the API lets admins change.
    readonly_fields = ["slug", "family", *LORA_PROVENANCE_FIELDS]
    fieldsets = [
        (None, {"fields": ["name", "slug", "family", "trigger_words", "default_weight", "description", "enabled"]}),
        ("Provenance", {"fields": LORA_PROVENANCE_FIELDS}),
    ]
    add_fieldsets = [(None, {"fields": ["file", "name", "family", "trigger_words", "default_weight"]})]

    @admin.display(description="File size", ordering="file_size")
    def size(self, obj):
        return filesizeformat(obj.file_size)

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else super().get_readonly_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            # Only the upload form's model fields: `file` and `family` go to register_lora.
            kwargs.update(form=LoraUploadForm, fields=LoraUploadForm.Meta.fields)
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        if change:  # an added LoRA was saved by register_lora when the form was checked
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        self.delete_queryset(request, Lora.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # Like the API: a deleted LoRA leaves no file behind (once the deletion is committed).
        names = list(queryset.values_list("file", flat=True))
        super().delete_queryset(request, queryset)
        for name in names:
            transaction.on_commit(partial(default_storage.delete, name))


# --- Generation jobs ---------------------------------------------------------------------------


class GenerationJobStartForm(forms.ModelForm):
    """The add form: starts a job through services.start_generation_job, with the API's limits."""

    # The parameters the API's serializer checks; an empty one takes the model's default.
    PARAMETERS = ("prompt", "negative_prompt", "scheduler", "steps", "guidance_scale", "width", "height", "seed",
                  "count")  # fmt: skip

    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))
    negative_prompt = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), help_text="Empty: the model's default."
    )
    model = forms.ModelChoiceField(queryset=DiffusionModel.objects.filter(enabled=True), empty_label=None)
    scheduler = forms.ChoiceField(
        required=False, choices=[("", "The model's default"), *((name, s[0]) for name, s in SCHEDULERS.items())]
    )
    steps = forms.IntegerField(required=False, help_text="1 to 150. Empty: the model's default.")
    guidance_scale = forms.FloatField(required=False, help_text="0 to 30. Empty: the model's default.")
    width = forms.IntegerField(required=False, help_text="A multiple of 8 within the model family's limits.")
    height = forms.IntegerField(required=False, help_text="A multiple of 8 within the model family's limits.")
    seed = forms.IntegerField(required=False, help_text="Empty: a random seed. Image i uses seed + i.")
    count = forms.IntegerField(initial=1, help_text="1 to 8 images.")
    loras = forms.ModelMultipleChoiceField(
        queryset=Lora.objects.filter(enabled=True),
        label="LoRAs",
        required=False,
        widget=FilteredSelectMultiple("LoRAs", is_stacked=False),
        help_text="Each at its default weight.",
    )
    album = forms.ModelChoiceField(
        queryset=Album.objects.filter(is_set_template=False), required=False, help_text="Collects the images."
    )

    class Meta:
        model = GenerationJob
        # `loras` is left out: the form's LoRA choices become the job's JSON through the service.
        fields = ["prompt", "negative_prompt", "model", "scheduler", "steps", "guidance_scale", "width", "height",
                  "seed", "count", "album"]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].initial = (
            DiffusionModel.objects.filter(is_default=True).values_list("pk", flat=True).first()
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        model = cleaned["model"]
        given = {name: cleaned[name] for name in self.PARAMETERS if cleaned.get(name) not in (None, "")}
        loras = [{"lora": str(lora.pk)} for lora in cleaned["loras"]]
        serializer = GenerationJobCreateSerializer(data={**given, "model": model.name, "loras": loras})
        if not serializer.is_valid():
            add_serializer_errors(self, serializer.errors)
            return cleaned
        parameters = serializer.validated_data
        try:
            services.check_loras_fit(model, parameters["loras"])
        except services.InvalidLora as exc:
            self.add_error("loras", exc.message)
            return cleaned
        self.job_parameters = {**parameters, "album": cleaned["album"]}
        return cleaned


@admin.register(GenerationJob)
class GenerationJobAdmin(JobAdmin):
    list_display = ["id", "short_prompt", "model", "status", "progress_display", "first_image", "created_at"]
    list_display_links = ["id", "short_prompt"]
    list_filter = [*JobAdmin.list_filter, "model"]
    list_select_related = ["model"]
    search_fields = ["prompt"]
    actions = [*JobAdmin.actions, "rerun_jobs"]
    exclude = ["images"]  # shown as thumbnails (result_images), not as a picker over every image
    add_fieldsets = [
        (None, {"fields": ["prompt", "negative_prompt", "model", "loras"]}),
        ("Parameters", {"fields": ["scheduler", "steps", "guidance_scale", ("width", "height"), "seed", "count"]}),
        ("Output", {"fields": ["album"]}),
    ]

    def has_add_permission(self, request):
        # Unlike other jobs, generation jobs are started from the console (through the service).
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("images")

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["result_images", *super().get_readonly_fields(request, obj)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs.update(form=GenerationJobStartForm, fields=GenerationJobStartForm.Meta.fields)
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        job = services.start_generation_job(user=request.user, **form.job_parameters)
        # The admin goes on to log and redirect to `obj`: make it the job the service started.
        obj.pk = job.pk
        obj.refresh_from_db()

    @admin.display(description="Prompt")
    def short_prompt(self, obj):
        return Truncator(obj.prompt).chars(80)

    @admin.display(description="Result")
    def first_image(self, obj):
        return thumbnail_tag(min(obj.images.all(), key=attrgetter("pk"), default=None))

    @admin.display(description="Images")
    def result_images(self, obj):
        links = (
            (reverse("admin:albums_image_change", args=[image.pk]), thumbnail_tag(image, 128))
            for image in sorted(obj.images.all(), key=attrgetter("pk"))
        )
        return format_html_join(" ", '<a href="{}">{}</a>', links) or "-"

    @admin.action(description="Re-run with the same parameters")
    def rerun_jobs(self, request, queryset):
        started = []
        for job in queryset.select_related("model", "album"):
            try:
                started.append(services.rerun_generation_job(job, user=request.user))
            except ImagineerError as exc:  # e.g. one of its LoRAs was deleted or disabled since
                self.message_user(request, f"Job #{job.pk} was not re-run: {exc.message}", messages.ERROR)
        if started:
            numbers = ", ".join(f"#{job.pk}" for job in started)
            self.message_user(request, f"Queued {len(started)} new job(s): {numbers}.", messages.SUCCESS)


# --- Set runs ----------------------------------------------------------------------------------


@admin.register(SetRun)
class SetRunAdmin(JobAdmin):
    list_display = [
        "id", "template", "album_name", "theme", "status", "items", "failed_items", "output_album_link", "created_at",
    ]  # fmt: skip
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
