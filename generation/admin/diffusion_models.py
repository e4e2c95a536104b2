"""Diffusion models in admin: the registered models, which is the default, which are enabled."""

from django.contrib import admin, messages
from django.db import transaction

from generation.models import DiffusionModel


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
