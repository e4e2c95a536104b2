"""Small pieces every app's admin uses: an image's thumbnail tag, and API serializer errors shown on a form."""

from django import forms
from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html


def thumbnail_tag(image: Model | None, size: int = 64) -> str:
    """An <img> of the image's thumbnail (served by the API's `image-thumbnail` route), or "-"."""
    if image is None or not image.pk:
        return "-"
    url = reverse("image-thumbnail", args=[image.pk])
    return format_html('<img src="{}" alt="" style="max-width:{}px;max-height:{}px" loading="lazy">', url, size, size)


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for value in detail for message in _messages(value)]
    return [str(detail)]


def add_serializer_errors(form: forms.Form, errors: dict) -> None:
    """Show the errors of an API serializer that checked `form`'s data on the form itself.

    Admin forms validate through the API's serializers so both apply the same limits.
    """
    for name, detail in errors.items():
        form.add_error(name if name in form.fields else None, _messages(detail))
