from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest
from django.utils.html import format_html

from imagineer.celery import queue_for_task
from imagineer.core import jobs
from imagineer.core.models import AbstractJob, CeleryWorker, User
from imagineer.core.workers import (
    LiveQueues,
    WorkerState,
    waits_for_worker,
    worker_state,
    workers_in_state,
)

admin.site.site_header = "Imagineer"
admin.site.site_title = "Imagineer admin"
admin.site.index_title = "Operations"

admin.site.register(User, UserAdmin)


class JobAdmin(admin.ModelAdmin):
    """Admin base for every job kind: read-only lifecycle fields, cancel and retry actions.

    Wherever a subclass places "status" (its list_display, list_display_links, its own fieldsets),
    the page shows the job's status with its queue state instead: a queued job that no live worker
    could take says so and names its queue, so an operator knows to start a worker rather than wait.
    """

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

    def get_list_display(self, request):
        return self._with_status_column(request, super().get_list_display(request))

    def get_list_display_links(self, request, list_display):
        return self._with_status_column(request, super().get_list_display_links(request, list_display))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Subclasses write their own fieldsets naming "status": swapping it here, on the page about to
        # render, reaches all of them. Only where it is read-only (every saved job's page).
        adminform = context.get("adminform")
        if obj is not None and adminform is not None and "status" in adminform.readonly_fields:
            adminform.fieldsets = [
                (name, {**options, "fields": self._with_status_column(request, options["fields"])})
                for name, options in adminform.fieldsets
            ]
            adminform.readonly_fields = self._with_status_column(request, adminform.readonly_fields)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _with_status_column(self, request: HttpRequest, names):
        """`names` (field names, or tuples of them on one line) with "status" swapped for the status column."""
        if not names:
            return names
        column = self._status_column(request)
        return [
            tuple(column if name == "status" else name for name in item)
            if isinstance(item, (list, tuple))
            else (column if item == "status" else item)
            for item in names
        ]

    def _status_column(self, request: HttpRequest):
        """The status column of this request's page: one callable per request and admin, so that the
        changelist (list_display, links, sortable_by) and the change form each find the same one."""
        columns = request.__dict__.setdefault("_imagineer_status_columns", {})
        if self not in columns:
            live_queues = request.__dict__.setdefault("_imagineer_live_queues", LiveQueues())

            @admin.display(description="Status", ordering="status")
            def status(job: AbstractJob) -> str:
                return self.status_with_queue_state(job, live_queues)

            columns[self] = status
        return columns[self]

    def status_with_queue_state(self, job: AbstractJob, live_queues: LiveQueues) -> str:
        """The status; for a queued job that no live worker consumes the queue of, that and its queue.
        The times the sweep sent the job again, when it did."""
        if waits_for_worker(job, live_queues):
            text = format_html("Queued — no worker consumes queue <code>{}</code>", queue_for_task(job.task_name))
        else:
            text = job.get_status_display()
        if job.resend_count:
            text = format_html("{} (sent again {}×)", text, job.resend_count)
        return text

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


# --- Celery workers ---------------------------------------------------------------------------


class WorkerStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return WorkerState.choices

    def queryset(self, request, queryset):
        if self.value() not in WorkerState.values:
            return queryset
        return queryset.filter(workers_in_state(WorkerState(self.value())))


@admin.register(CeleryWorker)
class CeleryWorkerAdmin(admin.ModelAdmin):
    """Read-only: the rows are the workers' own reports, which the job sweep decides on.

    Not even dead rows may be deleted: a dead worker's row lists the job messages lost with it,
    which the sweep sends again; the sweep forgets rows itself a day after their last report.
    """

    list_display = [
        "name",
        "pid",
        "queue_list",
        "concurrency",
        "state",
        "held_job_count",
        "free_slot_since",
        "last_seen_at",
        "started_at",
        "stopped_at",
    ]
    list_filter = [WorkerStateFilter]
    search_fields = ["name"]
    ordering = ["-last_seen_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["state", *(f.name for f in self.model._meta.fields)]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Queues")
    def queue_list(self, worker: CeleryWorker) -> str:
        return ", ".join(worker.queues) or "-"

    @admin.display(description="State")
    def state(self, worker: CeleryWorker) -> str:
        return worker_state(worker).label

    @admin.display(description="Held jobs")
    def held_job_count(self, worker: CeleryWorker) -> int:
        return len(worker.held_jobs)
