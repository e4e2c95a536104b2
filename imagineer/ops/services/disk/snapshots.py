"""Disk snapshots: what is watched, the mounts holding it, taking a snapshot and serving the latest.

A snapshot measures every mount that holds a monitored directory (os.statvfs, grouped by st_dev)
and walks every monitored directory (walk.measure_tree) until the configured deadline, stores a
DiskSnapshot and moves the alert states (alerts). Requests read the latest stored snapshot
(`latest_disk_stats`) and never walk a tree; `request_snapshot` queues one on the maintenance queue.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from albums.models import Image, ImageSource
from imagineer.core.errors import ServiceUnavailableError
from imagineer.core.logging import get_logger
from imagineer.core.runtime_config import get_runtime_config
from imagineer.ops.models import DiskSnapshot
from imagineer.ops.services.disk.alerts import send_alerts, update_alert_states
from imagineer.ops.services.disk.walk import measure_tree
from imagineer.ops.services.media_folders import MEDIA_SUBFOLDERS

# The package's name as it was before the split into modules and the move into services/: LOG_LEVELS
# entries and log searches know it so.
logger = get_logger("imagineer.ops.disk")

SNAPSHOT_TASK = "imagineer.ops.tasks.take_disk_snapshot"
DEFAULT_SCHEDULE_SECONDS = 6 * 3600  # migration 0002's interval, used when the schedule is not an interval
STALE_AFTER_SCHEDULES = 2  # a snapshot older than two schedule periods means beat or the worker is not running
REFRESH_DEDUPE_SECONDS = 60  # "refresh" pressed twice within this queues one snapshot
_REFRESH_KEY = "ops:disk:refresh-requested"

# The media subfolders (imagineer/ops/services/media_folders.py) are always listed, so charts keep
# their rows; other subfolders found in the media root are listed after them while they exist.
SCRAPED_LABEL = "scraped_images"  # scraped images live in media/images: counted from their rows


@dataclass(frozen=True)
class MonitoredDirectory:
    label: str
    path: Path
    origin: str  # "media", "builtin" or "config"


def monitored_directories() -> list[MonitoredDirectory]:
    """Built-in directories (media subfolders, model cache, training, scratch) then the config's extras."""
    media = Path(settings.MEDIA_ROOT)
    found = [MonitoredDirectory(f"media_{name}", media / name, "media") for name in MEDIA_SUBFOLDERS]
    found += [MonitoredDirectory(f"media_{_label_part(name)}", media / name, "media") for name in _other_media(media)]
    found += [
        MonitoredDirectory("models", Path(settings.IMAGINEER_MODELS_DIR), "builtin"),
        MonitoredDirectory("training", Path(settings.IMAGINEER_TRAINING_DIR), "builtin"),
        MonitoredDirectory("scratch", Path(settings.IMAGINEER_SCRATCH_DIR), "builtin"),
    ]
    found += [
        MonitoredDirectory(extra.label, Path(extra.path), "config")
        for extra in get_runtime_config().disk.extra_directories
    ]
    unique: dict[str, MonitoredDirectory] = {}
    for directory in found:
        if directory.label in unique or directory.label == SCRAPED_LABEL:
            logger.warning("disk.duplicate_label_ignored", label=directory.label, origin=directory.origin)
            continue
        unique[directory.label] = directory
    return list(unique.values())


def _other_media(media: Path) -> list[str]:
    try:
        with os.scandir(media) as entries:
            return sorted(
                entry.name
                for entry in entries
                if entry.is_dir(follow_symlinks=False)
                and not entry.name.startswith(".")
                and entry.name not in MEDIA_SUBFOLDERS
            )
    except OSError:
        return []


def _label_part(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:48] or "other"


# --- Mounts -----------------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path | None:
    """The path itself or its closest existing ancestor: a missing directory still has a mount."""
    for candidate in (path, *path.parents):
        try:
            os.stat(candidate)
        except OSError:
            continue
        return candidate
    return None


def mount_usage(path: Path) -> dict[str, Any]:
    """Capacity of the filesystem holding `path`, as `df` reports it.

    free is what an unprivileged writer can still use (f_bavail); used excludes free blocks of any
    kind; percent_used = used / (used + free), so blocks reserved for root count as unusable (an
    ext4 disk at 100% here is full for the application although root could still write).
    """
    info = os.statvfs(path)
    total = info.f_blocks * info.f_frsize
    free = info.f_bavail * info.f_frsize
    used = (info.f_blocks - info.f_bfree) * info.f_frsize
    percent = round(used / (used + free) * 100, 2) if used + free else 0.0
    return {"total_bytes": total, "used_bytes": used, "free_bytes": free, "percent_used": percent}


# --- Snapshots --------------------------------------------------------------------------------------


def take_snapshot(*, clock: Callable[[], float] = time.monotonic) -> DiskSnapshot:
    """Measure mounts and monitored directories, store a DiskSnapshot, send alerts for new crossings."""
    config = get_runtime_config().disk
    threshold = config.alert_threshold_percent
    started = clock()
    deadline = started + scan_budget_seconds(config.scan_time_limit_seconds)

    mount_list, directories = _measure(deadline, clock)

    scraped = _scraped_images_entry(directories)
    if scraped is not None:
        directories.append(scraped)
    totals = {mount["mount"]: mount["total_bytes"] for mount in mount_list}
    for entry in directories:
        total = totals.get(entry["mount"]) or 0
        entry["percent_of_mount"] = round(entry["size_bytes"] / total * 100, 2) if total else 0.0

    complete = all(entry["complete"] for entry in directories)
    with transaction.atomic():  # alert states and the snapshot that moved them, together
        crossed, to_notify, claimed_at = update_alert_states(mount_list, threshold)
        alerts = [
            {
                "type": "capacity",
                "mount": mount["mount"],
                "percent_used": mount["percent_used"],
                "threshold_percent": threshold,
                "new_crossing": mount["mount"] in crossed,
            }
            for mount in mount_list
            if mount["percent_used"] >= threshold
        ]
        snapshot = DiskSnapshot.objects.create(
            taken_at=timezone.now(),
            duration_seconds=round(max(clock() - started, 0.0), 3),
            threshold_percent=threshold,
            mounts=mount_list,
            directories=directories,
            alerts=alerts,
            complete=complete,
        )
    logger.info(
        "disk.snapshot_taken",
        snapshot_id=snapshot.pk,
        mounts=len(mount_list),
        directories=len(directories),
        complete=complete,
        alerts=len(alerts),
        duration_seconds=snapshot.duration_seconds,
    )
    if to_notify:
        send_alerts(snapshot, to_notify, claimed_at)
    return snapshot


def _measure(deadline: float, clock: Callable[[], float]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Mounts (one per st_dev, named after their first directory) and each monitored directory's walk."""
    mounts: dict[int, dict[str, Any]] = {}  # st_dev → mount entry, in order of first directory
    directories: list[dict[str, Any]] = []
    for directory in monitored_directories():
        anchor = _nearest_existing(directory.path)
        entry: dict[str, Any] = {
            "label": directory.label,
            "origin": directory.origin,
            "mount": None,
            "exists": os.path.isdir(directory.path),
            "size_bytes": 0,
            "file_count": 0,
            "dir_count": 0,
            "skipped_entries": 0,
            "percent_of_mount": 0.0,
            "complete": True,
        }
        if anchor is not None:
            try:
                device = os.stat(anchor).st_dev
                if device not in mounts:
                    mounts[device] = {"mount": directory.label, **mount_usage(anchor)}
                entry["mount"] = mounts[device]["mount"]
            except OSError:
                logger.warning("disk.mount_unreadable", label=directory.label)
        if entry["exists"]:
            if clock() > deadline:
                entry["complete"] = False
            else:
                usage = measure_tree(directory.path, deadline=deadline, clock=clock)
                entry.update(
                    size_bytes=usage.size_bytes,
                    file_count=usage.file_count,
                    dir_count=usage.dir_count,
                    skipped_entries=usage.skipped_entries,
                    complete=usage.complete,
                )
        directories.append(entry)
    return list(mounts.values()), directories


def scan_budget_seconds(configured: float) -> float:
    """The walk's time limit: the configured one, kept inside the maintenance queue's soft time limit
    (less a minute to store the snapshot and send alerts), so the worker never kills a snapshot midway."""
    soft_limit = settings.CELERY_QUEUE_TIME_LIMITS["maintenance"][0]
    return min(configured, max(soft_limit - 60, 1))


def _scraped_images_entry(directories: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Scraped images share media/images with the rest: their share comes from Image rows, not a walk."""
    images = next((entry for entry in directories if entry["label"] == "media_images"), None)
    if images is None:
        return None
    totals = Image.objects.filter(source=ImageSource.SCRAPED).aggregate(count=Count("pk"), size=Sum("file_size"))
    return {
        "label": SCRAPED_LABEL,
        "origin": "database",
        "mount": images["mount"],
        "exists": images["exists"],
        "size_bytes": totals["size"] or 0,
        "file_count": totals["count"],
        "dir_count": 0,
        "skipped_entries": 0,
        "percent_of_mount": 0.0,
        "complete": True,
    }


# --- Reading ----------------------------------------------------------------------------------------


def schedule_seconds() -> float:
    """Period of the enabled beat entry that takes snapshots (its interval; 6 h for other schedules)."""
    from django_celery_beat.models import PeriodicTask

    periods = [
        task.interval.schedule.run_every.total_seconds()
        for task in PeriodicTask.objects.filter(
            task=SNAPSHOT_TASK, enabled=True, interval__isnull=False
        ).select_related("interval")
    ]
    return min(periods) if periods else float(DEFAULT_SCHEDULE_SECONDS)


def latest_disk_stats() -> dict[str, Any]:
    """The latest snapshot in the API's shape (mounts and directories keyed by label), with its age.

    With no snapshot yet the shape is the same: taken_at and age_seconds null, stale true, empty
    mounts and directories, and a hint saying how to get one. Never walks a tree.
    """
    stale_after = STALE_AFTER_SCHEDULES * schedule_seconds()
    snapshot = DiskSnapshot.objects.order_by("-taken_at", "-pk").first()
    if snapshot is None:
        return {
            "snapshot_id": None,
            "taken_at": None,
            "age_seconds": None,
            "stale": True,
            "stale_after_seconds": stale_after,
            "complete": False,
            "duration_seconds": None,
            "threshold_percent": get_runtime_config().disk.alert_threshold_percent,
            "mounts": {},
            "directories": {},
            "alerts": [],
            "hint": "No disk snapshot yet. POST /api/admin/disk-stats/refresh (or wait for the schedule) to take one.",
        }
    age = max((timezone.now() - snapshot.taken_at).total_seconds(), 0.0)
    threshold = snapshot.threshold_percent
    return {
        "snapshot_id": snapshot.pk,
        "taken_at": snapshot.taken_at,
        "age_seconds": round(age, 1),
        "stale": age > stale_after,
        "stale_after_seconds": stale_after,
        "complete": snapshot.complete,
        "duration_seconds": snapshot.duration_seconds,
        "threshold_percent": threshold,
        "mounts": {
            mount["mount"]: {
                "total_bytes": mount["total_bytes"],
                "used_bytes": mount["used_bytes"],
                "free_bytes": mount["free_bytes"],
                "percent_used": mount["percent_used"],
                "above_threshold": mount["percent_used"] >= threshold,
            }
            for mount in snapshot.mounts
        },
        "directories": {
            entry["label"]: {key: value for key, value in entry.items() if key != "label"}
            for entry in snapshot.directories
        },
        "alerts": snapshot.alerts,
        "hint": None,
    }


def request_snapshot() -> dict[str, Any]:
    """Queue a snapshot now (maintenance queue); a second request within a minute is folded into the first."""
    if not cache.add(_REFRESH_KEY, True, timeout=REFRESH_DEDUPE_SECONDS):
        return {
            "queued": False,
            "task_id": None,
            "message": f"A snapshot was requested less than {REFRESH_DEDUPE_SECONDS} s ago; it is on its way.",
        }
    try:
        result = current_app.send_task(SNAPSHOT_TASK)
    except Exception as exc:  # noqa: BLE001 - any broker failure is one answer to the operator
        cache.delete(_REFRESH_KEY)
        logger.error("disk.snapshot_enqueue_failed", exc_type=type(exc).__name__)
        raise ServiceUnavailableError(
            "The task queue is unreachable, so no snapshot was queued. Try again shortly.", code="queue_unavailable"
        ) from exc
    logger.info("disk.snapshot_requested", task_id=result.id)
    return {
        "queued": True,
        "task_id": result.id,
        "message": "Snapshot queued; the latest stats change when it is stored (seconds to minutes).",
    }
