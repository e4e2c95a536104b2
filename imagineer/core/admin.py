import smtplib

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from imagineer.celery import queue_for_task
from imagineer.core import jobs, quotas, signup
from imagineer.core.auth import deactivate_user, reactivate_user
from imagineer.core.logging import get_logger
from imagineer.core.models import AbstractJob, CeleryWorker, Invitation, User, UserQuota
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

logger = get_logger(__name__)


# --- Users -------------------------------------------------------------------------------------


def _fieldsets_with_account_state(fieldsets):
    """UserAdmin's fieldsets with the editable is_active swapped for a read-only state: a user is
    deactivated by the action only, which also signs them out everywhere."""
    return tuple(
        (name, {**options, "fields": tuple("account_state" if f == "is_active" else f for f in options["fields"])})
        for name, options in fieldsets
    )


class UserQuotaInline(admin.StackedInline):
    """This user's own quota values (empty: the runtime config's `quotas` defaults), and what they used today."""

    model = UserQuota
    can_delete = False
    verbose_name = "quota"
    verbose_name_plural = "quota (empty fields: the runtime config's defaults; admins are exempt unless set to No)"
    fields = ("images_per_day", "concurrent_jobs", "gpu_seconds_per_day", "exempt", "use_today")
    readonly_fields = ("use_today",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "exempt":
            # Say what each choice means here, not Django's generic Unknown / Yes / No.
            kwargs["widget"] = forms.NullBooleanSelect()
            kwargs["widget"].choices = [
                ("unknown", "Default: exempt if admin"),
                ("true", "Exempt"),
                ("false", "Not exempt, even as an admin"),
            ]
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Use now")
    def use_today(self, quota: UserQuota) -> str:
        if quota.pk is None:
            return "—"
        report = quotas.quota_report(quota.user)
        parts = []
        for name, label in (
            ("images_per_day", "images today"),
            ("concurrent_jobs", "jobs queued or running"),
            ("gpu_seconds_per_day", "GPU seconds today"),
        ):
            entry = report[name]
            limit = "no limit" if entry["limit"] is None else f"of {entry['limit']}"
            parts.append(f"{entry['used']:g} {label} ({limit})")
        return "; ".join(parts) + (" — exempt" if report["exempt"] else "")


@admin.register(User)
class ImagineerUserAdmin(UserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    fieldsets = _fieldsets_with_account_state(UserAdmin.fieldsets)
    readonly_fields = ("account_state",)
    actions = ["deactivate_users", "reactivate_users"]
    inlines = [UserQuotaInline]

    @admin.display(description="Account")
    def account_state(self, user: User) -> str:
        if user.is_active:
            return "Active. To deactivate (and sign out everywhere), use the action on the user list."
        return "Deactivated: cannot sign in. To let them in again, use the action Reactivate on the user list."

    @admin.action(description="Deactivate (sign-out everywhere)", permissions=["change"])
    def deactivate_users(self, request, queryset):
        if queryset.filter(pk=request.user.pk).exists():
            # Nothing changes: an admin deselects themselves rather than getting half of what they asked.
            self.message_user(
                request, "You cannot deactivate yourself; nobody was deactivated. Deselect yourself.", messages.ERROR
            )
            return
        users = list(queryset.filter(is_active=True))
        for user in users:
            deactivate_user(user, by=request.user)
        self.message_user(
            request,
            f"Deactivated {len(users)} user(s): their sessions and API tokens no longer work and they cannot "
            "sign in until reactivated.",
            messages.SUCCESS,
        )

    @admin.action(description="Reactivate", permissions=["change"])
    def reactivate_users(self, request, queryset):
        users = list(queryset.filter(is_active=False))
        for user in users:
            reactivate_user(user, by=request.user)
        self.message_user(
            request,
            f"Reactivated {len(users)} user(s): they can sign in again (API tokens must be made anew).",
            messages.SUCCESS,
        )


# --- Invitations -------------------------------------------------------------------------------


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return signup.InvitationStatus.choices

    def queryset(self, request, queryset):
        if self.value() not in signup.InvitationStatus.values:
            return queryset
        return queryset.filter(signup.with_status(self.value()))


class InvitationAddForm(forms.ModelForm):
    days_valid = forms.IntegerField(
        min_value=1,
        max_value=signup.MAX_INVITE_DAYS,
        initial=lambda: settings.IMAGINEER_INVITE_DAYS,
        help_text="How long the invitation can be used (IMAGINEER_INVITE_DAYS by default).",
    )

    class Meta:
        model = Invitation
        fields = ["email", "note"]
        help_texts = {
            "email": "The address of the person's Google account. They get an e-mail with the sign-in link; "
            "their first sign-in with this (verified) address makes their account."
        }

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if signup.address_taken(email):
            raise forms.ValidationError("A user with this address exists already: there is nobody to invite.")
        pending = Invitation.objects.filter(signup.with_status(signup.InvitationStatus.PENDING), email__iexact=email)
        if pending.exists():
            raise forms.ValidationError(
                f"{pending.first()} for this address is still pending: select it in the list and use "
                "“Send again” to send it again with a new expiry."
            )
        return email


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invite people by e-mail when sign-up is closed (imagineer/core/signup.py).

    The address, expiry and who invited are fixed once made; "Send again" renews the expiry and
    e-mails it again, "Revoke" ends it now (it then shows as expired).
    """

    list_display = ["__str__", "email", "status", "invited_by", "created_at", "expires_at", "used_at", "used_by"]
    list_filter = [InvitationStatusFilter]
    search_fields = ["email", "note"]
    actions = ["send_again", "revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = InvitationAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["email", "days_valid", "note"]
        return ["email", "status", "note", "invited_by", "created_at", "expires_at", "used_at", "used_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["email", "status", "invited_by", "created_at", "expires_at", "used_at", "used_by"]

    @admin.display(description="Status")
    def status(self, invitation: Invitation) -> str:
        return signup.invitation_status(invitation).label

    def save_model(self, request, obj, form, change):
        if not change:
            obj.invited_by = request.user
            obj.expires_at = signup.expiry_after(form.cleaned_data["days_valid"])
        super().save_model(request, obj, form, change)
        if not change:
            logger.info("auth.invitation_created", invitation_id=obj.pk, by_user_id=request.user.pk)
            self._send_after_commit(request, [obj])

    @admin.action(description="Send again (renews the expiry)", permissions=["change"])
    def send_again(self, request, queryset):
        renewed = [invitation for invitation in queryset if signup.renew(invitation)]
        skipped = queryset.count() - len(renewed)
        if skipped:
            self.message_user(
                request, f"{skipped} invitation(s) were used already and were not sent.", messages.WARNING
            )
        self._send_after_commit(request, renewed)

    @admin.action(description="Revoke", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = sum(signup.revoke(invitation, by=request.user) for invitation in queryset)
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} invitation(s): they can no longer be used."
        if skipped:
            text += f" {skipped} were used or expired already and were left as they were."
        self.message_user(request, text, messages.SUCCESS if revoked else messages.WARNING)

    def _send_after_commit(self, request, invitations: list[Invitation]) -> None:
        """E-mail the invitations once their rows are committed: no mail for a row that was rolled
        back, and no database transaction held open while the mail server answers."""
        if not invitations:
            return
        sign_in_url = request.build_absolute_uri(reverse("account_login"))

        def send() -> None:
            sent = []
            for invitation in invitations:
                try:
                    signup.send_invitation(invitation, sign_in_url)
                except (smtplib.SMTPException, OSError) as exc:
                    logger.warning("auth.invitation_mail_failed", invitation_id=invitation.pk, error=type(exc).__name__)
                    self.message_user(
                        request,
                        f"{invitation} is valid, but its e-mail to {invitation.email} could not be sent "
                        f"({type(exc).__name__}). Check the mail settings (EMAIL_URL) and use “Send again”, "
                        f"or send the person the sign-in link yourself: {sign_in_url}",
                        messages.ERROR,
                    )
                else:
                    sent.append(invitation)
            if sent:
                until = ", ".join(
                    f"{i.email} (valid until {timezone.localtime(i.expires_at):%Y-%m-%d %H:%M %Z})" for i in sent
                )
                self.message_user(request, f"Sent the invitation e-mail to {until}.", messages.SUCCESS)

        transaction.on_commit(send)


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
