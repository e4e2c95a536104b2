from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin

from imagineer.core import jobs
from imagineer.core.models import User

admin.site.site_header = "Imagineer"
admin.site.site_title = "Imagineer admin"
admin.site.index_title = "Operations"

admin.site.register(User, UserAdmin)


class JobAdmin(admin.ModelAdmin):
    """Admin base for every job kind: read-only lifecycle fields, cancel and retry actions."""

    list_display = ["__str__", "status", "progress_display", "created_by", "created_at", "started_at", "finished_at"]
    list_filter = ["status", "created_at"]
    actions = ["cancel_jobs", "retry_jobs"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Read-only pages: a Save here would overwrite progress a worker wrote meanwhile.
        # Operators act on jobs through the actions (cancel, retry), which use the lifecycle.
        return False

    @admin.display(description="Progress")
    def progress_display(self, obj):
        return f"{obj.progress_current}/{obj.progress_total}" if obj.progress_total else "-"

    def _apply(self, request, queryset, action, verb):
        done, refused = 0, 0
        for job in queryset:
            try:
                action(job)
                done += 1
            except jobs.ConflictError:
                refused += 1
        self.message_user(
            request, f"{verb} {done} job(s); {refused} were not in a state that allows it.", messages.INFO
        )

    def has_operate_permission(self, request) -> bool:
        """Cancel/retry: staff allowed to change this kind of job (the pages stay read-only)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Cancel selected jobs", permissions=["operate"])
    def cancel_jobs(self, request, queryset):
        self._apply(request, queryset, jobs.cancel_job, "Cancelled")

    @admin.action(description="Retry selected failed/cancelled jobs", permissions=["operate"])
    def retry_jobs(self, request, queryset):
        self._apply(request, queryset, jobs.retry_job, "Requeued")
