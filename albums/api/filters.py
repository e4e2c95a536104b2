from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from albums.models import Album, AlbumType, Image, ImageSource, NsfwCheck


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, as UTC: Python accepts offsets up to ±23:59, PostgreSQL refuses past ±15:59 (a 500)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before the first representable instant
            raise ValidationError("Enter a date and time between the years 1 and 9999.", code="invalid") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class ImageFilter(django_filters.FilterSet):
    is_nsfw = django_filters.BooleanFilter(help_text="Admins only in effect: others never see NSFW images.")
    is_public = django_filters.BooleanFilter()
    source = django_filters.ChoiceFilter(choices=ImageSource.choices)
    nsfw_check = django_filters.ChoiceFilter(
        choices=NsfwCheck.choices,
        help_text="The NSFW check's state. Others than admins see pending and failed ones of their own only.",
    )
    album = django_filters.NumberFilter(method="filter_album", help_text="Album id.")
    model = django_filters.CharFilter()
    q = django_filters.CharFilter(field_name="prompt", lookup_expr="icontains", help_text="Text in the prompt.")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Image
        fields = ["is_nsfw", "is_public", "nsfw_check", "source", "album", "model", "sha256"]

    def filter_album(self, queryset, name, value):
        # Only albums the caller may see: a private album's contents never show through a filter.
        visible = Album.objects.visible_to(getattr(self.request, "user", None)).filter(pk=value)
        return queryset.filter(album_links__album__in=visible)


class AlbumFilter(django_filters.FilterSet):
    album_type = django_filters.ChoiceFilter(choices=AlbumType.choices)
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="Text in the name.")

    class Meta:
        model = Album
        fields = ["album_type", "source_type", "is_public", "slug", "is_set_template"]
