"""Rate limits through django-ratelimit, answered in the error envelope with Retry-After.

Counters live in the Django cache: Redis (shared by every process) when REDIS_URL is set, local
memory otherwise.
"""

from __future__ import annotations

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
