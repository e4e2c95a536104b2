"""Request ids and the one-line-per-request log.

The id is the client's X-Request-ID when it is sane (1-128 characters of letters, digits and
`-_.:`), else a new uuid4 hex. It is bound to every log line of the request (structlog
contextvars), returned in the X-Request-ID header and put in every error body, and carried into
every Celery task sent meanwhile (header `imagineer_request_id`, see imagineer/celery.py). The
request line: one per request, event "request", with method, path (no query string), status,
duration_ms and user_id.
"""

from __future__ import annotations

import re
import time
import uuid

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from imagineer.core.logging import get_logger
from imagineer.core.request_context import bind_current_request, bind_request_id, clear_request_context

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = get_logger("imagineer.request")


def _user_id(request: HttpRequest) -> int | None:
    """The request's user for its log line; DRF authenticates in the view and sets request.user
    then, so token users count too."""
    user = getattr(request, "user", None)
    try:
        return user.pk if getattr(user, "is_authenticated", False) else None
    except DatabaseError:
        # A session user not loaded yet, with the database gone: the answer (a 503) still goes out.
        return None


def accept_request_id(candidate: str | None) -> str:
    if candidate and SANE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        clear_request_context()
        request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        bind_request_id(request_id)
        bind_current_request(request)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            logger.info(
                "request",
                method=request.method,
                path=request.path,  # never the query string
                status=response.status_code,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                user_id=_user_id(request),
            )
        finally:
            clear_request_context()
        return response
