"""What labeling adds to albums' image and album pages, registered through albums.admin's extensions
(albums never imports labeling): the label inline, the NSFW flag history, and the actions that start
labeling runs."""

from django import forms
from django.contrib import admin, messages

from albums.admin import album_admin_extensions, image_admin_extensions
from albums.models import NsfwFlagChange
from imagineer.core.errors import ImagineerError
from labeling import services
from labeling.admin.labels import LabelForm
from labeling.admin.runs import labeling_run_link, labeling_run_message
from labeling.labelers import check_labeler
from labeling.models import Label, LabelerName


class LabelInlineFormSet(forms.BaseInlineFormSet):
    request = None  # the admin's request, set per request by LabelInline.get_formset

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        # Rows of this one save against each other: the same (type, text) twice keeps neither.
        seen: dict[tuple[str, str], LabelForm] = {}
        for form in self.forms:
            if not form.label_fields or (self.can_delete and self._should_delete_form(form)):
                continue
            key = (form.label_fields["label_type"], form.label_fields["text"])
            if key in seen:
                form.add_error(None, f"The {key[0]} label '{key[1][:80]}' is on this page twice.")
                seen[key].add_error(None, f"The {key[0]} label '{key[1][:80]}' is on this page twice.")
            seen.setdefault(key, form)

    def save(self, commit=True):
        """Write the rows through labeling.services as the request's user; a refused row becomes an error message.

        Deletions first (a row may then take a deleted row's text). new_objects, changed_objects and
        deleted_objects are filled as a plain formset's save fills them: the admin's history reads them.
        """
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        deleted = [form for form in self.forms if self.can_delete and self._should_delete_form(form)]
        for label_form in deleted:
            if label_form.instance.pk is not None:
                self.deleted_objects.append(label_form.instance)
                self.delete_existing(label_form.instance)
        for label_form in self.forms:
            if label_form in deleted or not label_form.label_fields:
                continue
            is_new = label_form.instance.pk is None
            try:
                label = label_form.write(self.instance, user=self.request.user)
            except ImagineerError as exc:  # written by someone else since the page was checked
                messages.error(self.request, exc.message)
                continue
            if is_new:
                self.new_objects.append(label)
            else:
                self.changed_objects.append((label, label_form.changed_data))
        return [*self.new_objects, *(label for label, _ in self.changed_objects)]


class LabelInline(admin.TabularInline):
    """The image's labels; new and edited rows are written by labeling.services (LabelInlineFormSet.save)."""

    model = Label
    form = LabelForm
    formset = LabelInlineFormSet
    extra = 1
    fields = ["text", "label_type", "confidence", "source", "source_model", "created_by", "created_at"]
    readonly_fields = ["source", "source_model", "created_by", "created_at"]
    ordering = ["label_type", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new class per request
        formset.request = request
        return formset


class NsfwFlagChangeInline(admin.TabularInline):
    """Every change of is_nsfw: to what, by whom or by which labeler's rating, and when. Read only."""

    model = NsfwFlagChange
    extra = 0
    fields = ["created_at", "is_nsfw", "source", "changed_by", "labeler", "rating", "labeling_run"]
    readonly_fields = fields
    can_delete = False
    verbose_name = "NSFW flag change"
    verbose_name_plural = "NSFW flag history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Labeling run")
    def labeling_run(self, obj):
        return labeling_run_link(obj.labeling_run_id)


def _label_images(model_admin, request, queryset, labeler: str) -> None:
    """One labeling run over the selected images."""
    try:
        run = services.start_labeling_run(
            image_ids=list(queryset.values_list("pk", flat=True)), labeler=labeler, user=request.user
        )
    except ImagineerError as exc:  # no API key, everything already labeled, queue unreachable
        model_admin.message_user(request, exc.message, messages.ERROR)
        return
    model_admin.message_user(request, labeling_run_message(run), messages.SUCCESS)


@admin.action(description="Label with Claude (background job)")
def label_images_with_claude(model_admin, request, queryset):
    _label_images(model_admin, request, queryset, LabelerName.CLAUDE)


@admin.action(description="Detect NSFW locally (NudeNet, background job)")
def detect_nsfw_in_images_locally(model_admin, request, queryset):
    _label_images(model_admin, request, queryset, LabelerName.NUDENET)


def _label_albums(model_admin, request, queryset, labeler: str) -> None:
    """One labeling run per album; an album that cannot be labeled is named in an error message."""
    try:
        check_labeler(labeler)
    except ImagineerError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return
    for album in queryset:
        try:
            run = services.start_labeling_run(album=album, labeler=labeler, user=request.user)
        except (services.AlbumEmpty, services.NothingToLabel) as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)  # these name the album
        except ImagineerError as exc:
            model_admin.message_user(request, f"Album '{album.name}' was not labeled: {exc.message}", messages.ERROR)
        else:
            model_admin.message_user(request, labeling_run_message(run, f" of album '{album.name}'"), messages.SUCCESS)


@admin.action(description="Label with Claude (background job per album)")
def label_albums_with_claude(model_admin, request, queryset):
    _label_albums(model_admin, request, queryset, LabelerName.CLAUDE)


@admin.action(description="Detect NSFW locally (NudeNet, background job per album)")
def detect_nsfw_in_albums_locally(model_admin, request, queryset):
    _label_albums(model_admin, request, queryset, LabelerName.NUDENET)


image_admin_extensions.add_inline(LabelInline)
image_admin_extensions.add_inline(NsfwFlagChangeInline)
image_admin_extensions.add_action(label_images_with_claude, name="label_with_claude")
image_admin_extensions.add_action(detect_nsfw_in_images_locally, name="detect_nsfw_locally")
album_admin_extensions.add_action(label_albums_with_claude, name="label_with_claude")
album_admin_extensions.add_action(detect_nsfw_in_albums_locally, name="detect_nsfw_locally")
