"""Set templates in admin: albums' pages with a template's rows as CSV, its prompt preview, and the
"Generate this set" page that starts a set run (generation.services, with the API's limits).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from albums.admin import AlbumAdmin
from albums.models import Album
from generation import services
from generation.api.serializers import SetRunCreateSerializer
from generation.models import DiffusionModel
from generation.sets import SetFormatError, items_to_csv, parse_items_csv, render_set_prompt
from imagineer.core.admin_helpers import add_serializer_errors
from imagineer.core.errors import ImagineerError

PROMPT_PREVIEW_ROWS = 5


class SetTemplateAlbumForm(forms.ModelForm):
    """The album form; a set template's rows are edited as CSV text, the format sets are written in."""

    items_csv = forms.CharField(
        label="Template items (CSV)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100, "style": "font-family: monospace"}),
        help_text="One image per row. The header names the columns the prompt template uses as {column}.",
    )

    class Meta:
        model = Album
        # Every editable field but template_items, which is edited through items_csv.
        fields = [
            "name",
            "slug",
            "description",
            "album_type",
            "is_public",
            "source_type",
            "source_id",
            "is_set_template",
            "base_prompt",
            "prompt_template",
            "style_suffix",
            "example_theme",
            "width",
            "height",
            "negative_prompt",
            "loras",
            "default_model",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("items_csv", items_to_csv(self.instance.template_items))

    def clean_items_csv(self) -> list[dict[str, str]]:
        text = self.cleaned_data["items_csv"]
        if not text.strip():
            return []
        try:
            return parse_items_csv(text)
        except SetFormatError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def save(self, commit=True):
        # Only an edited CSV replaces the rows: an untouched one is left exactly as stored.
        if "items_csv" in self.changed_data:
            self.instance.template_items = self.cleaned_data["items_csv"]
        return super().save(commit)


class SetRunStartForm(forms.Form):
    """The "Generate this set" form: checked with the API's limits, started by services.start_set_run."""

    OVERRIDES = ("steps", "seed", "width", "height")

    theme = forms.CharField(max_length=500, help_text='Every prompt gets "Art style: " and this theme.')
    album_name = forms.CharField(max_length=200, required=False, help_text="Empty: template · theme · date.")
    model = forms.ModelChoiceField(
        queryset=DiffusionModel.objects.filter(enabled=True),
        required=False,
        empty_label="The template's model (else the default model)",
    )
    steps = forms.IntegerField(required=False, help_text="Empty: the model's default.")
    seed = forms.IntegerField(required=False, help_text="Empty: a random seed. Row i uses seed + i.")
    width = forms.IntegerField(required=False, help_text="Empty: the template's size, else the model's.")
    height = forms.IntegerField(required=False, help_text="Empty: the template's size, else the model's.")
    batch_size = forms.IntegerField(required=False, help_text="Images per forward pass. Empty: the server's setting.")

    def __init__(self, *args, template: Album, **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        given = {name: value for name, value in cleaned.items() if value not in (None, "")}
        if "model" in given:
            given["model"] = given["model"].name
        serializer = SetRunCreateSerializer(data=given, context={"template": self.template})
        try:
            valid = serializer.is_valid()
        except ImagineerError as exc:  # e.g. no model named anywhere and no default model registered
            self.add_error(None, exc.message)
            return cleaned
        if not valid:
            add_serializer_errors(self, serializer.errors)
            return cleaned
        self.run_parameters = serializer.validated_data
        return cleaned

    def start(self, user):
        parameters = self.run_parameters
        return services.start_set_run(
            self.template,
            user=user,
            theme=parameters["theme"],
            album_name=parameters.get("album_name", ""),
            model=parameters.get("model"),
            batch_size=parameters.get("batch_size"),
            overrides={name: parameters[name] for name in self.OVERRIDES if name in parameters},
        )


admin.site.unregister(Album)


@admin.register(Album)
class SetTemplateAlbumAdmin(AlbumAdmin):
    """The album pages with a set template's section and its "Generate this set" page.

    A set template is an album (albums.Album holds its columns), but its rows as CSV, its prompts and
    its runs are generation's: this subclass takes AlbumAdmin's place, so albums imports none of it.
    """

    form = SetTemplateAlbumForm
    readonly_fields = [*AlbumAdmin.readonly_fields, "generate_link", "prompt_preview"]
    set_template_fields = [
        "is_set_template",
        "generate_link",
        "base_prompt",
        "prompt_template",
        "style_suffix",
        "example_theme",
        ("width", "height"),
        "negative_prompt",
        "loras",
        "default_model",
        "items_csv",
        "prompt_preview",
    ]

    def get_fieldsets(self, request, obj=None):
        # Open for set templates: it is what the operator came to edit, and errors in a closed
        # (collapsed) fieldset would go unseen.
        template_classes = [] if obj is not None and obj.is_set_template else ["collapse"]
        return [
            *super().get_fieldsets(request, obj),
            ("Set template", {"classes": template_classes, "fields": self.set_template_fields}),
        ]

    @admin.display(description="Prompt preview")
    def prompt_preview(self, obj):
        """The first rows' prompts as a run would send them, from the saved template and example theme."""
        rows = obj.template_items[:PROMPT_PREVIEW_ROWS] if obj.pk else []
        if not rows:
            return "-"
        prompts = ((render_set_prompt(obj, row, obj.example_theme),) for row in rows)
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", prompts))

    @admin.display(description="Generate")
    def generate_link(self, obj):
        if not (obj.pk and obj.is_set_template):
            return "Only a saved set template can be generated."
        url = reverse("admin:albums_album_generate", args=[obj.pk])
        return format_html('<a class="button" href="{}">Generate this set</a>', url)

    def get_urls(self):
        # Ahead of the default patterns, whose "<path:object_id>/" would take ".../generate/".
        generate = path(
            "<path:object_id>/generate/", self.admin_site.admin_view(self.generate_view), name="albums_album_generate"
        )
        return [generate, *super().get_urls()]

    def generate_view(self, request, object_id):
        """Start a set run from a set template, then show it on its SetRun admin page."""
        template = self.get_object(request, unquote(object_id))
        if template is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        if not template.is_set_template:
            self.message_user(
                request, f"'{template.name}' is not a set template: there is nothing to generate.", messages.ERROR
            )
            return redirect("admin:albums_album_change", template.pk)
        data = request.POST if request.method == "POST" else None
        form = SetRunStartForm(data, template=template, initial={"theme": template.example_theme})
        if form.is_valid():
            try:
                run = form.start(request.user)
            except ImagineerError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Started set run #{run.pk}: {run.total_items} images into the album '{run.album_name}'.",
                    messages.SUCCESS,
                )
                return redirect("admin:generation_setrun_change", run.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate set: {template.name}",
            "opts": self.opts,
            "original": template,
            "row_count": len(template.template_items),
            "adminform": helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}),
            "errors": helpers.AdminErrorList(form, []),
        }
        return TemplateResponse(request, "admin/generation/generate_set.html", context)
