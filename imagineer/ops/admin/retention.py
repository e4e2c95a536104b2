"""Admin for retention: policies (with their schedules and last results) and the runs they made."""

from django import forms
from django.contrib import admin, messages
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html

from imagineer.core.admin import JobAdmin
from imagineer.core.errors import ImagineerError
from imagineer.ops.models import PurgeRun, RetentionPolicy
from imagineer.ops.services import retention


class RetentionPolicyForm(forms.ModelForm):
    max_age_days = forms.IntegerField(
        min_value=1,  # 0 would make the cutoff "now": everything the target covers
        required=False,
        help_text="Only what is older than this many days is removed. Empty: the runtime config's default for the target.",
    )

    class Meta:
        model = RetentionPolicy
        fields = ["name", "target", "max_age_days", "enabled", "dry_run", "include_album_images"]
        help_texts = {
            "name": 'Its schedule (Periodic tasks) is named after it: "Retention: <name>".',
            "enabled": "Off: its schedule is disabled too, so no scheduled runs. Run now still works.",
        }


def result_summary(result: dict) -> str:
    """One line an operator reads: what the last run removed (or would have)."""
    if not result:
        return "-"
    verb = "would remove" if result.get("dry_run") else "removed"
    text = (
        f"{verb} {result.get('files_removed', 0)} file(s), {result.get('rows_removed', 0)} row(s), "
        f"{filesizeformat(result.get('bytes_freed', 0))}"
    )
    if result.get("error_count"):
        text += f"; {result['error_count']} error(s)"
    return text


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    form = RetentionPolicyForm
    list_display = [
        "name",
        "target",
        "max_age_days",
        "enabled",
        "dry_run",
        "include_album_images",
        "schedule",
        "last_run_at",
        "last_run_status",
        "last_result_summary",
    ]
    list_filter = ["target", "enabled", "dry_run"]
    search_fields = ["name"]
    actions = ["run_now", "dry_run_now"]
    readonly_fields = ["schedule", "last_run_at", "last_run_status", "last_result_summary", "runs", "last_errors"]
    fieldsets = [
        (None, {"fields": ["name", "target", "max_age_days", "enabled", "dry_run", "include_album_images"]}),
        ("Schedule", {"fields": ["schedule"]}),
        ("Last run", {"fields": ["last_run_at", "last_run_status", "last_result_summary", "last_errors", "runs"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("periodic_task__crontab", "periodic_task__interval")

    @admin.display(description="Schedule")
    def schedule(self, obj):
        task = obj.periodic_task
        if task is None:
            return "No schedule (runs only when started by hand)"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        when = task.crontab or task.interval or task.clocked or task.solar or "?"
        if task.enabled:
            state = ""
        elif not obj.enabled:
            state = " (off: the policy is disabled)"
        else:
            state = " (paused in Periodic tasks)"
        return format_html('<a href="{}">{}</a>{}', url, when, state)

    @admin.display(description="Last result")
    def last_result_summary(self, obj):
        return result_summary(obj.last_result)

    @admin.display(description="Last errors")
    def last_errors(self, obj):
        return "; ".join((obj.last_result or {}).get("errors", [])) or "-"

    @admin.display(description="Runs")
    def runs(self, obj):
        if obj.pk is None:
            return "-"
        url = reverse("admin:ops_purgerun_changelist") + f"?policy__id__exact={obj.pk}"
        return format_html('<a href="{}">{} run(s)</a>', url, obj.runs.count())

    def save_model(self, request, obj, form, change):
        retention.save_policy(obj)

    def delete_model(self, request, obj):
        retention.delete_policy(obj)

    def delete_queryset(self, request, queryset):
        for policy in queryset:
            retention.delete_policy(policy)

    def _start(self, request, queryset, *, dry_run: bool | None):
        started = []
        for policy in queryset:
            try:
                started.append(retention.start_purge(policy, user=request.user, dry_run=dry_run))
            except ImagineerError as exc:
                self.message_user(request, f"{policy.name}: {exc.message}", messages.ERROR)
        if started:
            url = reverse("admin:ops_purgerun_changelist")
            self.message_user(
                request,
                format_html(
                    'Started {} purge run(s){}. <a href="{}">Follow them on the purge runs page.</a>',
                    len(started),
                    " as dry runs" if dry_run else "",
                    url,
                ),
                messages.SUCCESS,
            )

    # A purge deletes data: only staff allowed to change policies may start one.
    @admin.action(description="Run now (as the policy says: dry run or not)", permissions=["change"])
    def run_now(self, request, queryset):
        self._start(request, queryset, dry_run=None)

    @admin.action(description="Dry run now (count what would go, remove nothing)", permissions=["change"])
    def dry_run_now(self, request, queryset):
        self._start(request, queryset, dry_run=True)


@admin.register(PurgeRun)
class PurgeRunAdmin(JobAdmin):
    list_display = [
        *JobAdmin.list_display,
        "policy",
        "target",
        "dry_run",
        "files_removed",
        "rows_removed",
        "bytes_display",
    ]
    list_filter = [*JobAdmin.list_filter, "target", "dry_run", "policy"]
    list_select_related = ["policy", "created_by"]

    @admin.display(description="Bytes freed", ordering="bytes_freed")
    def bytes_display(self, obj):
        return filesizeformat(obj.bytes_freed)
