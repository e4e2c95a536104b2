"""Labels in the console: the label form (through labeling.services, checked by the API's serializer,
so a label made here is normalised and a person's, as one made through the API), the label list and
the top-tags page (figures from labeling.analytics)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from albums.models import Album, Image
from imagineer.core.admin_helpers import add_serializer_errors, thumbnail_tag
from imagineer.core.errors import ImagineerError
from labeling import analytics, services
from labeling.admin.runs import labeling_run_link
from labeling.api.serializers import LabelWriteSerializer
from labeling.models import TAG_TYPES, Label, LabelingRun, LabelType


def label_is_editable(label: Label) -> bool:
    """Scraped labels (alt text, titles, page captions) are kept as the page had them."""
    return label.pk is None or label.label_type in services.MANUAL_LABEL_TYPES


class LabelForm(forms.ModelForm):
    """A label as a person writes it: checked by the API's serializer and the label services' own
    check (type, length, duplicate), so a refusal shows on the form; `write` stores it through them.
    """

    label_fields: dict | None = None  # the checked text, label_type and confidence, when changed

    class Meta:
        model = Label
        fields = ["text", "label_type", "confidence"]
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not label_is_editable(self.instance):
            for field in self.fields.values():
                field.disabled = True  # shown as it is; it can still be deleted
        elif "label_type" in self.fields:
            self.fields["label_type"].choices = [
                (value, name) for value, name in LabelType.choices if value in services.MANUAL_LABEL_TYPES
            ]

    def clean(self):
        cleaned = super().clean()
        self.label_fields = None
        if self.errors or not self.has_changed():
            return cleaned
        serializer = LabelWriteSerializer(
            data={name: cleaned.get(name) for name in ("text", "label_type", "confidence")}
        )
        if not serializer.is_valid():
            add_serializer_errors(self, serializer.errors)
            return cleaned
        fields = dict(serializer.validated_data)
        # An inline row knows its image (the formset sets it); the label page's add form picks one.
        image = cleaned.get("image")
        image_id = self.instance.image_id or (image.pk if image else None)
        if image_id is not None:
            try:
                fields["text"] = services.check_manual_label(
                    image_id, text=fields["text"], label_type=fields["label_type"], label_id=self.instance.pk
                )
            except ImagineerError as exc:
                self.add_error(None, exc.message)
                return cleaned
        self.label_fields = fields
        return cleaned

    def write(self, image: Image, *, user) -> Label:
        """Create the label, or update it, through the label services (ImagineerError when refused)."""
        if self.instance.pk is None:
            return services.create_manual_label(image, user=user, **self.label_fields)
        # From the database: the form's instance already holds the new values, and update_label
        # decides from the stored source whether a machine label becomes a person's.
        label = Label.objects.filter(pk=self.instance.pk).first()
        if label is None:
            raise ImagineerError(f"Label #{self.instance.pk} was deleted meanwhile.", code="not_found")
        return services.update_label(label, user=user, **self.label_fields)


class TopTagsForm(forms.Form):
    album = forms.ModelChoiceField(
        queryset=Album.objects.filter(is_set_template=False).order_by("name"),
        required=False,
        empty_label="All albums",
    )
    label_type = forms.ChoiceField(
        choices=[("", "Tags and manual labels"), *((value, LabelType(value).label) for value in TAG_TYPES)],
        required=False,
    )
    limit = forms.TypedChoiceField(
        choices=[(n, n) for n in (10, 25, 50, 100)], coerce=int, required=False, empty_value=50, initial=50
    )
    offset = forms.IntegerField(min_value=0, max_value=analytics.MAX_OFFSET, required=False, widget=forms.HiddenInput)

    def filters(self) -> analytics.LabelFilters:
        data = self.cleaned_data
        return analytics.LabelFilters(
            label_type=data["label_type"] or None,
            album_id=data["album"].pk if data["album"] else None,
            limit=data["limit"],
            offset=data["offset"] or 0,
        )


class SourceModelFilter(admin.SimpleListFilter):
    """Machine labels by model. The choices come from the runs (a few rows), not from a DISTINCT
    over the whole label table, which would cost a full scan on every page load at a million labels.
    """

    title = "source model"
    parameter_name = "source_model"

    def lookups(self, request, model_admin):
        names = LabelingRun.objects.order_by("source_model").values_list("source_model", flat=True).distinct()
        return [(name, name) for name in names if name]

    def queryset(self, request, queryset):
        return queryset.filter(source_model=self.value()) if self.value() else queryset


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    form = LabelForm
    list_display = [
        "preview",
        "short_text",
        "label_type",
        "source",
        "source_model",
        "confidence",
        "image_link",
        "created_by",
        "created_at",
    ]
    list_display_links = ["preview", "short_text"]
    list_filter = ["label_type", "source", SourceModelFilter, "created_at"]
    list_select_related = ["image", "created_by"]
    # A number finds the labels of that image too (as text: the admin casts it, so no error for words).
    search_fields = ["text", "image__id__exact"]
    search_help_text = "Label text, or an image id."
    raw_id_fields = ["image"]
    list_per_page = 100

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["image", "text", "label_type", "confidence"]
        return [
            "preview",
            "image_link",
            "text",
            "label_type",
            "confidence",
            "source",
            "source_model",
            "run_link",
            "created_by",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["preview", "image_link", "source", "source_model", "run_link", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        # Scraped labels are kept as the page had them: viewable and deletable, not editable.
        return super().has_change_permission(request, obj) and (obj is None or label_is_editable(obj))

    def save_model(self, request, obj, form, change):
        if not form.label_fields:  # nothing changed
            return
        # A duplicate written by someone else between the form's check and here is refused by the
        # unique constraint (an error page, nothing stored); the inline on the image page reports it.
        label = form.write(obj.image, user=request.user)
        # The admin goes on to log and redirect to `obj`: make it the label the service wrote.
        obj.pk = label.pk
        obj.refresh_from_db()

    @admin.display(description="Preview")
    def preview(self, obj):
        return thumbnail_tag(obj.image)

    @admin.display(description="Text", ordering="text")
    def short_text(self, obj):
        return Truncator(obj.text).chars(80)

    @admin.display(description="Image", ordering="image_id")
    def image_link(self, obj):
        url = reverse("admin:albums_image_change", args=[obj.image_id])
        return format_html('<a href="{}">Image #{}</a>', url, obj.image_id)

    @admin.display(description="Labeling run")
    def run_link(self, obj):
        return labeling_run_link(obj.run_id)

    def get_urls(self):
        top_tags = path("top-tags/", self.admin_site.admin_view(self.top_tags_view), name="labeling_label_top_tags")
        return [top_tags, *super().get_urls()]

    def top_tags_view(self, request):
        """The most used tags, with counts and shares, for all albums or one, from labeling.analytics."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TopTagsForm(request.GET)  # always bound: no parameters at all are the defaults
        top = analytics.top_tags(request.user, form.filters()) if form.is_valid() else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Top tags",
            "opts": self.opts,
            "form": form,
            "top": top,
            **(self._pages(request, top) if top is not None else {}),
        }
        return TemplateResponse(request, "admin/labeling/label/top_tags.html", context)

    @staticmethod
    def _pages(request, top) -> dict:
        """Query strings of the previous and next pages (the filters kept)."""

        def page(offset: int) -> str:
            query = request.GET.copy()
            query["offset"] = offset
            return "?" + query.urlencode()

        offset, limit = top["offset"], top["limit"]
        return {
            "first_rank": offset + 1,
            "previous_page": page(max(offset - limit, 0)) if offset else None,
            "next_page": page(offset + limit) if offset + limit < top["unique_tags"] else None,
        }
