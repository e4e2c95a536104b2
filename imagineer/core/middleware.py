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
from contextvars import ContextVar

import structlog
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from imagineer.core.logging import get_logger

REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header that carries the request id into a task (imagineer/celery.py).
TASK_REQUEST_ID_HEADER = "imagineer_request_id"
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_request_id: ContextVar[str] = ContextVar("request_id", default="")
# The request being served, so every log line of it can name its user (add_request_user).
_current_request: ContextVar[HttpRequest | None] = ContextVar("current_request", default=None)
logger = get_logger("imagineer.request")


def current_request_id() -> str:
    """The id of the request (or task) being served; a fresh one outside any."""
    return _request_id.get() or uuid.uuid4().hex


def bound_request_id() -> str:
    """The id of the request (or task) being served; "" outside any."""
    return _request_id.get()


def bind_request_id(request_id: str) -> None:
    _request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_context() -> None:
    """Forget the request id and every bound log field (end of a request or a task)."""
    structlog.contextvars.clear_contextvars()
    _request_id.set("")
    _current_request.set(None)


def authenticated_user_id() -> int | None:
    """The id of the request's user once it is known, without authenticating for a log line.

    Session users: the lazy `request.user` only once something evaluated it; token users: DRF
    sets `request.user` on the Django request when it authenticates in the view.
    """
    request = _current_request.get()
    if request is None:
        return None
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    return user.pk if getattr(user, "is_authenticated", False) else None


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
        _current_request.set(request)
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
