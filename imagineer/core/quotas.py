"""Per-user quotas: images per day, jobs queued or running at once, GPU seconds per day.

The defaults are the runtime config's `quotas` section; a `UserQuota` row overrides them for one
user (admin › Users). Admins are exempt unless their row says otherwise. A day is the calendar day
in settings.TIME_ZONE (UTC by default): use counted since its midnight, reset at the next.

Use is counted from the rows that are the truth (images stored, jobs and their inference time), not
from counters that could drift: the apps that make images or use the GPU register a meter each
(`register_meter`, from their AppConfig.ready(); core never imports them). Jobs at once are counted
over every concrete AbstractJob kind.

Admission (`admit`) holds the user's UserQuota row locked (SELECT ... FOR UPDATE on PostgreSQL; on
SQLite every transaction is BEGIN IMMEDIATE, which serialises writers) from the count until the new
job's row is written in the same transaction, so N parallel requests at the edge of a quota admit
exactly what remains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.models import AbstractJob, JobStatus, UserQuota
from imagineer.core.permissions import is_admin
from imagineer.core.runtime_config import get_runtime_config

logger = get_logger(__name__)

Measure = Literal["images", "gpu_seconds"]
# A meter answers how much of a measure `user` has used since `since` (images: made or reserved by
# jobs still to make them; gpu_seconds: inference time of jobs finished since then).
Meter = Callable[[object, datetime], float]
_METERS: dict[Measure, dict[str, Meter]] = {"images": {}, "gpu_seconds": {}}

# When a concurrency quota is full, nothing says when a job will end: clients try again after this.
CONCURRENT_RETRY_SECONDS = 30

QUOTA_NAMES = ("images_per_day", "concurrent_jobs", "gpu_seconds_per_day")


def register_meter(measure: Measure, name: str, meter: Meter) -> None:
    """Count `measure` with `meter` too (idempotent per name: a second ready() call replaces it)."""
    _METERS[measure][name] = meter


class QuotaExceeded(ImagineerError):
    status_code = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, quota: str, used: float, limit: int, requested: float, resets_at, retry_after):
        super().__init__(
            message,
            details={
                "quota": quota,
                "used": used,
                "limit": limit,
                "requested": requested,
                "resets_at": resets_at.isoformat() if resets_at else None,
                "retry_after": retry_after,
            },
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    exempt: bool
    images_per_day: int | None
    concurrent_jobs: int | None
    gpu_seconds_per_day: int | None


@dataclass(frozen=True)
class Use:
    images_per_day: int
    concurrent_jobs: int
    gpu_seconds_per_day: float


def day_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """This quota day's start and the next one's (midnight in settings.TIME_ZONE)."""
    local = timezone.localtime(now or timezone.now())
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    following = timezone.make_aware(datetime.combine(start.date() + timedelta(days=1), datetime.min.time()))
    return start, following


def limits_for(user, override: UserQuota | None = None) -> Limits:
    """The user's limits: their UserQuota row's values, else the runtime config's (None: no limit)."""
    if override is None:
        override = UserQuota.objects.filter(user=user).first()
    defaults = get_runtime_config().quotas
    exempt = is_admin(user) if override is None or override.exempt is None else override.exempt

    def pick(name: str) -> int | None:
        own = getattr(override, name, None) if override is not None else None
        return own if own is not None else getattr(defaults, name)

    return Limits(exempt, *(pick(name) for name in QUOTA_NAMES))


def job_kinds() -> list[type[AbstractJob]]:
    return [model for model in apps.get_models() if issubclass(model, AbstractJob)]


def active_jobs(user) -> int:
    """Jobs of every kind the user started that are queued or running."""
    active = (JobStatus.QUEUED, JobStatus.RUNNING)
    return sum(kind.objects.filter(created_by=user, status__in=active).count() for kind in job_kinds())


def measure_use(user, now: datetime | None = None) -> Use:
    start, _ = day_bounds(now)
    images = sum(meter(user, start) for meter in _METERS["images"].values())
    gpu = sum(meter(user, start) for meter in _METERS["gpu_seconds"].values())
    return Use(images_per_day=int(images), concurrent_jobs=active_jobs(user), gpu_seconds_per_day=round(gpu, 1))


def _refuse(quota: str, used: float, limit: int, requested: float, what: str) -> QuotaExceeded:
    if quota == "concurrent_jobs":
        resets_at, retry_after = None, CONCURRENT_RETRY_SECONDS
        when = "when one of them ends"
    else:
        now = timezone.now()
        resets_at = day_bounds(now)[1]
        retry_after = max(1, int((resets_at - now).total_seconds()))
        when = f"at {resets_at:%Y-%m-%d %H:%M} {resets_at.tzname() or 'UTC'}"
    logger.info("quota.exceeded", quota=quota, used=used, limit=limit, requested=requested)
    return QuotaExceeded(
        f"Quota exceeded: {what} (used {used:g} of {limit}). It resets {when}.",
        quota=quota,
        used=used,
        limit=limit,
        requested=requested,
        resets_at=resets_at,
        retry_after=retry_after,
    )


def check(limits: Limits, use: Use, *, images: int, jobs: int, gpu: bool) -> None:
    """Raise QuotaExceeded for the first quota this request would pass."""
    if jobs and limits.concurrent_jobs is not None and use.concurrent_jobs + jobs > limits.concurrent_jobs:
        raise _refuse(
            "concurrent_jobs", use.concurrent_jobs, limits.concurrent_jobs, jobs, "too many jobs queued or running"
        )
    if images and limits.images_per_day is not None and use.images_per_day + images > limits.images_per_day:
        remaining = max(0, limits.images_per_day - use.images_per_day)
        raise _refuse(
            "images_per_day",
            use.images_per_day,
            limits.images_per_day,
            images,
            f"{images} more image(s) asked for, {remaining} left today",
        )
    if gpu and limits.gpu_seconds_per_day is not None and use.gpu_seconds_per_day >= limits.gpu_seconds_per_day:
        raise _refuse(
            "gpu_seconds_per_day",
            use.gpu_seconds_per_day,
            limits.gpu_seconds_per_day,
            0,
            "the GPU time for today is used up",
        )


@contextmanager
def admit(user, *, images: int = 0, jobs: int = 1, gpu: bool = False) -> Iterator[None]:
    """Admit a request that makes `images` images and starts `jobs` jobs (on the GPU if `gpu`), or raise.

    Write the new job (or image) inside the `with` block: it is in the same transaction as the
    count, under the user's lock, so the next request of the same user counts it.
    """
    if user is None or not user.is_authenticated:
        yield
        return
    override, _ = UserQuota.objects.get_or_create(user=user)  # the lock row; created outside the lock
    if limits_for(user, override).exempt:
        yield
        return
    with transaction.atomic():
        override = UserQuota.objects.select_for_update().get(pk=override.pk)
        limits = limits_for(user, override)
        if not limits.exempt:
            check(limits, measure_use(user), images=images, jobs=jobs, gpu=gpu)
        yield


def quota_report(user) -> dict:
    """The user's limits, use and remaining amounts, and when the day's quotas reset (for /api/auth/me)."""
    limits = limits_for(user)
    use = measure_use(user)
    _, resets_at = day_bounds()
    report: dict = {"exempt": limits.exempt, "day_resets_at": resets_at}
    for name in QUOTA_NAMES:
        limit, used = getattr(limits, name), getattr(use, name)
        report[name] = {
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(0, limit - used),
        }
    return report
