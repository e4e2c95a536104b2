"""What a client asks to receive: DRF's content negotiation, with refusals that say what would do.

DRF answers an unknown `?format=` with a bare 404 "Not found." (as if the URL did not exist) and an
Accept header it cannot meet with "Could not satisfy the request Accept header.". Both are a 406
`not_acceptable` here, naming the formats and media types the URL does answer in.
"""

from __future__ import annotations

from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """REST_FRAMEWORK's DEFAULT_CONTENT_NEGOTIATION_CLASS."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404 as exc:  # no renderer for the ?format= (or .json-style suffix) asked for
            asked = format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            formats = " or ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise NotAcceptable(
                f"Unknown format {asked!r}: this URL answers ?format={formats} (or leave format out).",
                available_renderers=renderers,
            ) from exc
        except NotAcceptable as exc:
            accept = request.META.get("HTTP_ACCEPT", "")[:200]
            media_types = ", ".join(dict.fromkeys(renderer.media_type for renderer in renderers))
            raise NotAcceptable(
                f"Cannot answer in {accept!r} (the Accept header): this URL answers {media_types}.",
                available_renderers=renderers,
            ) from exc
