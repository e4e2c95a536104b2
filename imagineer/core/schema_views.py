"""The schema and docs pages (/api/schema/, /api/docs/, /api/redoc/): drf-spectacular's, errors in the envelope.

Their renderers are YAML or HTML, and DRF renders an error with the renderer the request
negotiated (or the view's first one): the envelope came back as YAML from the schema view and as a
bare "404 Not Found" page from the docs views. An error from these views is JSON, like every other
error under /api/.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer


class ErrorsAsJSONMixin:
    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # finalize_response renders with the request's accepted renderer, negotiated or forced.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(ErrorsAsJSONMixin, SpectacularAPIView):
    """The OpenAPI schema: YAML by default, JSON with ?format=json or Accept: application/vnd.oai.openapi+json."""


class SwaggerView(ErrorsAsJSONMixin, SpectacularSwaggerView):
    """Swagger UI over the schema, served offline (drf-spectacular-sidecar)."""


class RedocView(ErrorsAsJSONMixin, SpectacularRedocView):
    """ReDoc over the schema, served offline (drf-spectacular-sidecar)."""
