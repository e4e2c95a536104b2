"""Training runs in admin (the full version lands with the run service)."""

from django.contrib import admin

from imagineer.core.admin import JobAdmin
from training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(JobAdmin):
    list_display = ["__str__", "name", "status", "progress_display", "created_at"]
