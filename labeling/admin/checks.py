"""The NSFW autocheck in the console: check jobs (list and page, failures per image), the image page's
check history, and "Check NSFW now" on the image list (registered through albums.admin's extensions)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from albums.admin import image_admin_extensions
from imagineer.core.admin import JobAdmin
from imagineer.core.errors import ImagineerError
from labeling import autocheck
from labeling.admin.runs import failures_table
from labeling.models import NsfwCheckJob

IMAGES_SHOWN = 500  # image links on a check job's page: more than a legacy import batch (200) holds


@admin.register(NsfwCheckJob)
class NsfwCheckJobAdmin(JobAdmin):
    list_display = [
        "id",
        "labeler",
        "status",
        "progress_display",
        "passed_count",
        "failed_count",
        "created_by",
        "created_at",
    ]
    list_display_links = ["id", "labeler"]
    list_filter = [*JobAdmin.list_filter, "labeler"]
    list_select_related = ["created_by"]
    exclude = ["failures", "images"]  # failures as a table; images as links (an M2M widget lists every image)

    def get_readonly_fields(self, request, obj=None):
        fields = [name for name in super().get_readonly_fields(request, obj) if name != "failures"]
        return [*fields, "progress_display", "image_links", "failures_shown"]

    def get_fieldsets(self, request, obj=None):
        check_fields = ["labeler", "source_model", "status", "progress_display", "error_message", "image_links"]
        result_fields = ["passed_count", "failed_count", "input_tokens", "output_tokens", "failures_shown"]
        placed = {*check_fields, *result_fields, "progress_current", "progress_total"}
        lifecycle = [name for name in super().get_readonly_fields(request, obj) if name not in placed | {"failures"}]
        return [
            (None, {"fields": check_fields}),
            ("Results", {"fields": result_fields}),
            ("Lifecycle", {"classes": ["collapse"], "fields": lifecycle}),
        ]

    @admin.display(description="Images")
    def image_links(self, obj):
        ids = obj.images.order_by("pk").values_list("pk", flat=True)[:IMAGES_SHOWN]
        links = format_html_join(
            ", ", '<a href="{}">#{}</a>', ((reverse("admin:albums_image_change", args=[pk]), pk) for pk in ids)
        )
        return links or "-"

    @admin.display(description="Failures")
    def failures_shown(self, obj):
        return failures_table(obj.failures)


class NsfwCheckJobInline(admin.TabularInline):
    """The image's check jobs, newest first: which labeler, how each ended and why. Read only."""

    model = NsfwCheckJob.images.through
    extra = 0
    fields = ["check_job", "labeler", "status", "error_message", "created_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name = "NSFW check job"
    verbose_name_plural = "NSFW check jobs"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("nsfwcheckjob").order_by("-nsfwcheckjob_id")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Check job")
    def check_job(self, obj):
        url = reverse("admin:labeling_nsfwcheckjob_change", args=[obj.nsfwcheckjob_id])
        return format_html('<a href="{}">NSFW check #{}</a>', url, obj.nsfwcheckjob_id)

    @admin.display(description="Labeler")
    def labeler(self, obj):
        return obj.nsfwcheckjob.get_labeler_display()

    @admin.display(description="Status")
    def status(self, obj):
        return obj.nsfwcheckjob.get_status_display()

    @admin.display(description="Error")
    def error_message(self, obj):
        return obj.nsfwcheckjob.error_message or "-"

    @admin.display(description="Queued")
    def created_at(self, obj):
        return obj.nsfwcheckjob.created_at


@admin.action(description="Check NSFW now (hidden until it passes; retries a failed check)")
def check_nsfw_now(model_admin, request, queryset):
    image_ids = list(queryset.values_list("pk", flat=True))
    try:
        job = autocheck.check_images_now(image_ids, user=request.user)
    except ImagineerError as exc:  # the queue unreachable
        model_admin.message_user(request, exc.message, messages.ERROR)
        return
    if job is None:
        model_admin.message_user(
            request, "A queued or running NSFW check already holds every selected image.", messages.WARNING
        )
        return
    checked = job.progress_total
    held = f"; {len(image_ids) - checked} already in a queued or running check" if checked < len(image_ids) else ""
    model_admin.message_user(
        request,
        format_html(
            'Queued <a href="{}">NSFW check #{}</a> ({}) of {} image(s){}. They are shown to their owner and '
            "admins only until it passes.",
            reverse("admin:labeling_nsfwcheckjob_change", args=[job.pk]),
            job.pk,
            job.get_labeler_display(),
            checked,
            held,
        ),
        messages.SUCCESS,
    )


image_admin_extensions.add_inline(NsfwCheckJobInline)
image_admin_extensions.add_action(check_nsfw_now, name="check_nsfw_now", order=-1)
