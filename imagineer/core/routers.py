"""One routing rule for the whole API, and one root that links to every resource of every app.

Each app's `api/urls.py` builds its own ApiRouter; a DefaultRouter would also give each a root view
of its own (only the first mounted would answer `/api/`, listing one app). So the routers make no
root, and the project mounts ApiRootView once: it lists every GET route under it that takes no path
parameter — router lists and plain views alike, whichever app registered them — so a new resource
appears at `/api/` without anyone listing it. Core imports no app: it reads the URL conf.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.routers import DefaultRouter
from rest_framework.views import APIView

# The trailing slash is optional on every API route (`/api/images/1/file` and `/file/` both work):
# routers append this; routes written with re_path end in it too (`^labels/stats/?$`).
OPTIONAL_TRAILING_SLASH = "/?"


class ApiRouter(DefaultRouter):
    """No root view of its own (ApiRootView is the one root), no `.json` suffixes, slash optional."""

    include_root_view = False
    include_format_suffixes = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = OPTIONAL_TRAILING_SLASH


def _answers_get(callback) -> bool:
    actions = getattr(callback, "actions", None)  # a ViewSet route: {method: action} its router bound
    if actions is not None:
        return "get" in actions
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return view_class is not None and hasattr(view_class, "get") and view_class is not ApiRootView


def _named_routes(patterns, prefix_groups: int = 0) -> Iterator[str]:
    """URL names of the GET routes that take no path parameter, in URL-conf order."""
    for entry in patterns:
        groups = prefix_groups + entry.pattern.regex.groups
        if isinstance(entry, URLResolver):
            yield from _named_routes(entry.url_patterns, groups)
        elif isinstance(entry, URLPattern) and entry.name and not groups and _answers_get(entry.callback):
            yield entry.name


class ApiRootView(APIView):
    """The API's entry point: a link to every list and top-level resource, and to the schema and docs.

    Keys are the paths below the root (`images`, `generation/jobs`, `labels/stats`, `schema`).
    """

    permission_classes = [AllowAny]
    schema = None  # a map of the API for people; the OpenAPI schema is that map for programs

    def get(self, request, *args, **kwargs):
        root = request.path.rstrip("/") + "/"
        links: dict[str, str] = {}
        for name in _named_routes(get_resolver(getattr(request, "urlconf", None)).url_patterns):
            try:
                path = reverse(name)
            except NoReverseMatch:
                continue
            key = path[len(root) :].rstrip("/")
            if path.startswith(root) and key and key not in links:
                links[key] = reverse(name, request=request)
        return Response(links)
