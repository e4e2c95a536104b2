"""What the URL conf and the OpenAPI schema say exists: (METHOD, path template) of every API operation."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Outside the API: the admin site (its own suite) and allauth's sign-in pages.
# Sign-in pages and allauth's headless browser API answer in their own shapes (HTML, allauth's
# JSON), not the envelope: tests/core/test_signup.py, test_headless_signin.py and test_cors.py cover them.
NOT_API = ("/admin/", "/accounts/", "/_allauth/")


def _template(pattern) -> str:
    """A URL pattern as a path template: `^images/(?P<pk>[^/.]+)/file/?$` → `images/{id}/file/`."""
    text = str(pattern).lstrip("^").rstrip("$").replace("/?", "/")
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)  # path() converters
    return text.replace("{pk}", "{id}")  # drf-spectacular names a pk "id"


def _methods(callback) -> set[str]:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    actions = getattr(callback, "actions", None)
    if actions:  # a viewset route: the methods its router bound, less any the viewset refuses
        return {m.upper() for m in actions if m in view_class.http_method_names} & set(HTTP_METHODS)
    if view_class is not None:
        return {m.upper() for m in view_class.http_method_names if hasattr(view_class, m)} & set(HTTP_METHODS)
    # A plain function view (healthz, readyz) cannot be asked; they are require_GET, and the 405
    # test of the matrix shows every other method is refused.
    return {"GET"}


def _walk(patterns, prefix: str) -> Iterator[tuple[str, object]]:
    for entry in patterns:
        path = prefix + _template(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, path)
        elif isinstance(entry, URLPattern):
            yield path, entry.callback


def routed_operations() -> set[tuple[str, str]]:
    """(METHOD, path template) of every view the URL conf routes, outside the admin site and allauth."""
    return {
        (method, path)
        for path, callback in _walk(get_resolver().url_patterns, "/")
        if not path.startswith(NOT_API)
        for method in _methods(callback)
    }


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method.upper() in HTTP_METHODS
    }
