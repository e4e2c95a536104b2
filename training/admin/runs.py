"""Training runs in admin: start one from albums, follow its progress and log, cancel or retry it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from albums.admin import album_admin_extensions
from albums.models import Album
from generation.models import DiffusionModel
from imagineer.core import jobs
from imagineer.core.admin import JobAdmin
from imagineer.core.admin_helpers import add_serializer_errors
from imagineer.core.errors import ImagineerError
from training import logs
from training.api.serializers.runs import TrainingRunCreateSerializer
from training.models import TrainingCheckpoint, TrainingRun
from training.services import runs

LOG_TAIL_BYTES = 64 * 1024


class TrainingRunStartForm(forms.ModelForm):
    """The add form: the API's checks (parameters, captions, capacity), then runs.start_training_run."""

    PARAMETERS = ("steps", "rank", "alpha", "learning_rate", "batch_size", "resolution", "seed", "save_every_steps")

    albums = forms.ModelMultipleChoiceField(
        queryset=Album.objects.filter(is_set_template=False),
        widget=FilteredSelectMultiple("albums", is_stacked=False),
        help_text="Every image with a caption label is trained on (a person's caption wins).",
    )
    model = forms.ModelChoiceField(queryset=DiffusionModel.objects.filter(enabled=True), empty_label=None)
    steps = forms.IntegerField(required=False, help_text="Empty: the runtime config's default (as for all below).")
    rank = forms.IntegerField(required=False)
    alpha = forms.IntegerField(required=False)
    learning_rate = forms.FloatField(required=False)
    batch_size = forms.IntegerField(required=False)
    resolution = forms.IntegerField(required=False, help_text="A multiple of 8.")
    seed = forms.IntegerField(required=False, help_text="Empty: a random seed, recorded on the run.")
    save_every_steps = forms.IntegerField(required=False, help_text="0: only the final LoRA.")

    class Meta:
        model = TrainingRun
        fields = ["name", "albums", "model", "trigger_words", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].initial = (
            DiffusionModel.objects.filter(is_default=True).values_list("pk", flat=True).first()
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        given = {name: cleaned[name] for name in self.PARAMETERS if cleaned.get(name) is not None}
        serializer = TrainingRunCreateSerializer(
            data={
                "name": cleaned["name"],
                "albums": [album.pk for album in cleaned["albums"]],
                "model": cleaned["model"].name,
                "trigger_words": cleaned.get("trigger_words", ""),
                "description": cleaned.get("description", ""),
                **given,
            }
        )
        if not serializer.is_valid():
            add_serializer_errors(self, serializer.errors)
            return cleaned
        data = serializer.validated_data
        try:  # the service checks these again when it starts the run; here they become form errors
            runs.check_model_trainable(data["model"])
            dataset = runs.collect_dataset(data["albums"], data["trigger_words"])
            runs.check_enough_captions(dataset.captioned, dataset.uncaptioned)
            runs.check_capacity()
        except ImagineerError as exc:
            raise forms.ValidationError(exc.message) from exc
        self.run_parameters = data
        return cleaned


class TrainingCheckpointInline(admin.TabularInline):
    model = TrainingCheckpoint
    extra = 0
    can_delete = False
    fields = ["step", "attempt", "loss", "file_size", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(JobAdmin):
    list_display = ["id", "name", "model", "status", "progress_display", "latest_loss", "lora", "created_at"]
    list_display_links = ["id", "name"]
    list_filter = [*JobAdmin.list_filter, "model"]
    list_select_related = ["model", "lora"]
    search_fields = ["name"]
    inlines = [TrainingCheckpointInline]
    change_form_template = "admin/training/trainingrun/change_form.html"
    add_fieldsets = [
        (None, {"fields": ["name", "albums", "model", "trigger_words", "description"]}),
        (
            "Parameters",
            {
                "fields": [
                    "steps",
                    ("rank", "alpha"),
                    "learning_rate",
                    "batch_size",
                    "resolution",
                    "seed",
                    "save_every_steps",
                ]
            },
        ),
    ]

    def has_add_permission(self, request):
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        return [
            (
                None,
                {"fields": ["name", "status", "progress_bar", "latest_loss", "final_loss", "lora", "error_message"]},
            ),
            ("Log (latest lines)", {"fields": ["log_tail"]}),
            (
                "Dataset",
                {
                    "fields": [
                        "albums_list",
                        "trigger_words",
                        "captioned_images",
                        "uncaptioned_images",
                        "manual_captions",
                        "missing_files",
                    ]
                },
            ),
            ("Parameters", {"fields": ["model", "parameters", "device"]}),
            (
                "Lifecycle",
                {
                    "fields": [
                        "created_by",
                        "created_at",
                        "started_at",
                        "finished_at",
                        "heartbeat_at",
                        "prepare_seconds",
                        "train_seconds",
                        "attempts",
                        "worker",
                        "trainer_pid",
                        "cancel_requested",
                        "sent_at",
                        "resend_count",
                        "celery_task_id",
                        "request_id",
                    ]
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["progress_bar", "log_tail", "albums_list", *super().get_readonly_fields(request, obj)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs.update(form=TrainingRunStartForm, fields=TrainingRunStartForm.Meta.fields)
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        run = runs.start_training_run(user=request.user, **form.run_parameters)
        obj.pk = run.pk  # the admin logs and redirects to `obj`: make it the run the service started
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        pass  # the service set the albums

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["follow_seconds"] = 5 if obj is not None and not obj.is_final else None
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        return format_html(
            '<progress max="{}" value="{}"></progress> step {} of {}',
            obj.progress_total or 1,
            obj.progress_current,
            obj.progress_current,
            obj.progress_total or "?",
        )

    @admin.display(description="Albums")
    def albums_list(self, obj):
        return ", ".join(album.name for album in obj.albums.all()) or "-"

    @admin.display(description="Log")
    def log_tail(self, obj):
        lines = logs.tail_log(obj, LOG_TAIL_BYTES)
        if not lines:
            return "-"
        return format_html(
            '<pre style="max-height: 30em; overflow: auto; white-space: pre-wrap">{}</pre>', "\n".join(lines)
        )

    @admin.action(description="Retry selected failed/cancelled runs", permissions=["operate"])
    def retry_jobs(self, request, queryset):
        for run in queryset:
            try:
                runs.retry_training_run(run)
            except (jobs.JobNotRetryable, runs.TrainingBusy) as exc:
                self.message_user(request, f"Run #{run.pk} was not retried: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"Run #{run.pk} is queued again.", messages.SUCCESS)


@admin.action(description="Train a LoRA on the selected albums")
def train_lora_on_albums(model_admin, request, queryset):
    """Open the training run form with these albums chosen (the run starts from there)."""
    ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
    return redirect(f"{reverse('admin:training_trainingrun_add')}?albums={ids}")


# After labeling's album actions (order 0), where the album list has always offered it.
album_admin_extensions.add_action(train_lora_on_albums, name="train_lora", order=1)
