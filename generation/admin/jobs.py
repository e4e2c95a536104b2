"""Generation jobs in admin: started through generation.services with the API's limits, followed, re-run."""

from operator import attrgetter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.text import Truncator

from albums.models import Album
from generation import registry, services
from generation.api.serializers import GenerationJobCreateSerializer
from generation.models import DiffusionModel, GenerationJob, Lora
from generation.pipeline.schedulers import SCHEDULERS
from imagineer.core.admin import JobAdmin
from imagineer.core.admin_helpers import add_serializer_errors, thumbnail_tag
from imagineer.core.errors import ImagineerError


class GenerationJobStartForm(forms.ModelForm):
    """The add form: starts a job through services.start_generation_job, with the API's limits."""

    # The parameters the API's serializer checks; an empty one takes the model's default.
    PARAMETERS = (
        "prompt",
        "negative_prompt",
        "scheduler",
        "steps",
        "guidance_scale",
        "width",
        "height",
        "seed",
        "count",
    )

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
        fields = [
            "prompt",
            "negative_prompt",
            "model",
            "scheduler",
            "steps",
            "guidance_scale",
            "width",
            "height",
            "seed",
            "count",
            "album",
        ]

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
            registry.check_loras_fit(model, parameters["loras"])
        except registry.InvalidLora as exc:
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
