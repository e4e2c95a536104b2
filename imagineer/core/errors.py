"""The one error envelope.

Every API error answers
    {"error": {"code", "message", "details", "trace_id", "timestamp"}}
whether it comes from DRF (validation, auth, 404, 405, parse errors, throttling), from a domain
exception raised by a service (rate limits included), or from an unhandled exception (500, which
never shows a traceback or a path). Non-API pages (admin, allauth) keep Django's HTML pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from imagineer.core.logging import get_logger
from imagineer.core.request_context import current_request_id

logger = get_logger(__name__)


class ImagineerError(Exception):
    """Base for domain errors that services raise and the envelope reports."""

    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class NotFoundError(ImagineerError):
    status_code = 404
    code = "not_found"


class ConflictError(ImagineerError):
    status_code = 409
    code = "conflict"


class ServiceUnavailableError(ImagineerError):
    status_code = 503
    code = "service_unavailable"
    retry_after = 5  # seconds: the services behind a 503 (database, cache, queue) come back on their own


def outage_error(exc: BaseException | None) -> ServiceUnavailableError | None:
    """The 503 for an exception that means a backing service is not answering, else None.

    The database (any request may need it) and Redis as the cache (rate limits). The task queue
    is reported where a job is sent (imagineer.core.jobs.enqueue_job: `queue_unavailable`).
    """
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return ServiceUnavailableError(
            "The database is unavailable right now; try again shortly.", code="database_unavailable"
        )
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is installed with Celery's Redis transport
        return None
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return ServiceUnavailableError(
            "The cache is unavailable right now; try again shortly.", code="cache_unavailable"
        )
    return None


DRF_CODES = {
    drf_exceptions.ValidationError: "validation_error",
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "trace_id": current_request_id(),
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    }


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def _first_validation_message(detail: Any, prefix: str = "") -> str:
    """A readable one-line summary of DRF's nested validation errors."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if not value:
                continue
            # An error about the whole object sits under non_field_errors: it keeps the object's path.
            label = prefix.rstrip(".") if key == "non_field_errors" else f"{prefix}{key}"
            return _first_validation_message(value, f"{label}." if label else "")
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if not item:
                continue  # a list serializer's entry for a valid item
            # A list serializer's errors line up with its items: name the item by its index.
            return _first_validation_message(item, f"{prefix}{index}." if isinstance(item, dict) else prefix)
    field = prefix.rstrip(".")
    return f"{field}: {detail}" if field else str(detail)


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


def _unsupported_media_type(request) -> tuple[str, dict[str, Any]]:
    """415: name the content type sent and the one this operation takes (imagineer/core/parsers.py)."""
    accepted = [parser.media_type for parser in getattr(request, "parsers", None) or []]
    sent = (getattr(request, "content_type", "") or "").split(";")[0].strip()[:100] or "none"
    takes = " or ".join(accepted) or "no body"
    message = f'Unsupported media type "{sent}": this operation takes {takes}.'
    if accepted == ["application/json"]:
        message += " Only file uploads are sent as multipart/form-data."
    return message, {"accepted": accepted}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF EXCEPTION_HANDLER: map every exception to the envelope."""
    headers: dict[str, str] = {}
    if (outage := outage_error(exc)) is not None:
        logger.warning("api.service_unavailable", code=outage.code, exc_type=type(exc).__name__)
        exc = outage
    if isinstance(exc, ImagineerError):
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=headers)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        # Django's request limits (DATA_UPLOAD_MAX_*), met while DRF parses the body: the client's doing.
        limit = f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes"
        message = f"The request body is over the {limit} limit for anything but uploaded files."
        return Response(error_body("request_too_large", message), status=413)
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"The request has more than {limit:,} form fields; an upload is a file and a few fields."
        if isinstance(exc, TooManyFilesSent):
            message = f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} files."
        return Response(error_body("malformed_request", message), status=400)
    if isinstance(exc, drf_exceptions.APIException):
        code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "error")
        if isinstance(exc, drf_exceptions.ValidationError):
            message = "Invalid input: " + _first_validation_message(exc.detail)
            fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            details = {"fields": _plain(fields)}
        elif isinstance(exc, drf_exceptions.UnsupportedMediaType):
            message, details = _unsupported_media_type(context.get("request"))
        elif isinstance(exc, drf_exceptions.NotAcceptable) and exc.available_renderers:
            message = str(exc.detail)
            details = {"available": list(dict.fromkeys(r.media_type for r in exc.available_renderers))}
        else:
            message = str(exc.detail)
            details = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    logger.exception("api.unhandled_exception", exc_type=type(exc).__name__)
    return Response(
        error_body("internal_error", "An unexpected error occurred. Quote the trace_id when reporting it."),
        status=500,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return error_response(404, "not_found", "No API endpoint matches this URL.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    if _is_api(request):
        return error_response(
            500, "internal_error", "An unexpected error occurred. Quote the trace_id when reporting it."
        )
    from django.views.defaults import server_error

    return server_error(request)


def handler403(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return error_response(403, "permission_denied", "You do not have permission to do this.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def handler400(request: HttpRequest, exception: Exception | None = None):
    if _is_api(request):
        return error_response(400, "bad_request", "The request could not be understood.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def csrf_failure(request: HttpRequest, reason: str = ""):
    if _is_api(request):
        return error_response(403, "csrf_failed", f"CSRF verification failed: {reason}")
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)
