"""LoRAs in admin: added by uploading (generation.registry checks the file), edited, deleted with their file."""

from functools import partial

from django import forms
from django.contrib import admin
from django.core.files.storage import default_storage
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from generation import registry
from generation.models import Lora, ModelFamily

LORA_PROVENANCE_FIELDS = [
    "provenance",
    "source_id",
    "source_note",
    "sha256",
    "size",
    "created_by",
    "created_at",
    "updated_at",
]


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
            lora, created = registry.register_uploaded_lora(
                cleaned["file"],
                name=cleaned["name"],
                family=cleaned["family"] or None,
                trigger_words=cleaned["trigger_words"],
                default_weight=cleaned["default_weight"],
                user=self.user,
            )
        except registry.InvalidLora as exc:
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
