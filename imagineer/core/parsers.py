"""One request content type per operation: JSON everywhere, `multipart/form-data` where a file is sent.

DRF's default parsers (JSON, form, multipart) let every operation take three encodings, and a
schema that says so breaks generated clients (openapi-python-client writes one body argument per
encoding). REST_FRAMEWORK's DEFAULT_PARSER_CLASSES is JSON only; a view whose action takes a file
names that action here, and that action alone parses multipart. A body in any other content type
answers 415 `unsupported_media_type` naming the one accepted (imagineer/core/errors.py).
"""

from __future__ import annotations

from typing import ClassVar

from rest_framework.metadata import SimpleMetadata
from rest_framework.parsers import BaseParser, JSONParser, MultiPartParser


class FileUploadParsersMixin:
    """For a ViewSet: the actions in `upload_actions` take `multipart/form-data` only, the rest JSON only.

    Form-urlencoded is never accepted: it cannot carry a file, and JSON says the same thing typed.
    """

    upload_actions: ClassVar[frozenset[str]] = frozenset({"create"})
    # What the browsable API reads to build its forms: the JSON raw-data form for every action.
    parser_classes: ClassVar[list[type[BaseParser]]] = [JSONParser]

    def get_parsers(self) -> list[BaseParser]:
        # DRF asks for the parsers before it sets self.action (ViewSetMixin.initialize_request);
        # schema generation sets the action and no request.
        action = getattr(self, "action", None)
        if action is None and getattr(self, "request", None) is not None:
            action = (getattr(self, "action_map", None) or {}).get(self.request.method.lower())
        if action in self.upload_actions:
            return [MultiPartParser()]
        return [JSONParser()]


class UploadAwareMetadata(SimpleMetadata):
    """OPTIONS names what the route's POST really parses: `multipart/form-data` on an upload route.

    DRF's metadata reads the view's `parser_classes` (JSON on every view), which would tell a client
    to send JSON where the upload takes multipart only, and earn it a 415.
    """

    def determine_metadata(self, request, view) -> dict:
        metadata = super().determine_metadata(request, view)
        post_action = (getattr(view, "action_map", None) or {}).get("post")
        if post_action is not None and post_action in getattr(view, "upload_actions", ()):
            metadata["parses"] = [MultiPartParser.media_type]
        return metadata
