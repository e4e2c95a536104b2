"""Rate limits through django-ratelimit, answered in the error envelope with Retry-After.

Counters live in the Django cache: Redis (shared by every process) when REDIS_URL is set, local
memory otherwise.
"""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from imagineer.core.errors import ImagineerError


class RateLimited(ImagineerError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


def enforce_rate_limit(request, *, group: str, rate: str, key: str = "user_or_ip") -> None:
    """Count this request against `rate` (e.g. "10/m") per user (IP when anonymous); raise when over."""
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        retry_after = max(1, int(usage["time_left"]))
        raise RateLimited(
            f"Too many requests: the limit is {rate}. Try again in {retry_after} s.", retry_after=retry_after
        )


# Every rate-limited group a client may hit, and the setting that holds its rate (read at call time,
# so an override in tests or a changed environment is what /api/auth/me reports).
RATE_LIMIT_SETTINGS = {
    "generation.jobs": "IMAGINEER_GENERATION_RATE",
    "images.upload": "IMAGINEER_UPLOAD_RATE",
    "training.start": "IMAGINEER_TRAINING_START_RATE",
    "ops.bug_reports.submit": "IMAGINEER_BUG_REPORT_RATE",
}


def rate_limit_state(request) -> list[dict]:
    """Where the request's user (or address) stands in every rate-limited group, without counting."""
    state = []
    for group, setting in RATE_LIMIT_SETTINGS.items():
        rate = getattr(settings, setting)
        usage = get_usage(request, group=group, key="user_or_ip", rate=rate, increment=False) or {}
        limit, used = usage.get("limit", 0), usage.get("count", 0)
        state.append(
            {
                "group": group,
                "rate": rate,
                "limit": limit,
                "used": used,
                "remaining": max(0, limit - used),
                "resets_in_seconds": int(usage.get("time_left", 0)),
            }
        )
    return state
