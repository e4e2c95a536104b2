"""Request ids and the one-line-per-request log.

The id is the client's X-Request-ID when it is sane (1-128 characters of letters, digits and
`-_.:`), else a new uuid4 hex. It is bound to every log line of the request (structlog
contextvars), returned in the X-Request-ID header and put in every error body.
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
from django.http import HttpRequest, HttpResponse

from imagineer.core.logging import get_logger

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_request_id: ContextVar[str] = ContextVar("request_id", default="")
logger = get_logger("imagineer.request")


def current_request_id() -> str:
    """The id of the request (or task) being served; a fresh one outside any."""
    return _request_id.get() or uuid.uuid4().hex


def bind_request_id(request_id: str) -> None:
    _request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def accept_request_id(candidate: str | None) -> str:
    if candidate and SANE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        structlog.contextvars.clear_contextvars()
        request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        bind_request_id(request_id)
        started = time.monotonic()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        user = getattr(request, "user", None)
        logger.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            user_id=user.pk if user is not None and user.is_authenticated else None,
        )
        structlog.contextvars.clear_contextvars()
        _request_id.set("")
        return response
