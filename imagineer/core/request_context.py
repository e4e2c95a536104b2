"""What the request (or Celery task) being served is: its id and, once known, its user.

Held in context variables so log processors (imagineer.core.logging), the error envelope, the job
lifecycle and the Celery signals can read them without importing the middleware that sets them.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import structlog
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject, empty

# The Celery message header that carries the request id into a task (imagineer/celery.py).
TASK_REQUEST_ID_HEADER = "imagineer_request_id"

_request_id: ContextVar[str] = ContextVar("request_id", default="")
# The request being served, so every log line of it can name its user (add_request_user).
_current_request: ContextVar[HttpRequest | None] = ContextVar("current_request", default=None)


def current_request_id() -> str:
    """The id of the request (or task) being served; a fresh one outside any."""
    return _request_id.get() or uuid.uuid4().hex


def bound_request_id() -> str:
    """The id of the request (or task) being served; "" outside any."""
    return _request_id.get()


def bind_request_id(request_id: str) -> None:
    _request_id.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def bind_current_request(request: HttpRequest) -> None:
    """Remember the request being served, so its log lines can name its user once it is known."""
    _current_request.set(request)


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
