"""Liveness (/healthz: the process answers) and readiness (/readyz: its dependencies answer)."""

from __future__ import annotations

import os
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from imagineer.core.errors import error_response
from imagineer.core.logging import get_logger

logger = get_logger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker() -> None:
    from imagineer.celery import app

    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        if not os.access(folder, os.W_OK):
            raise OSError("broker folder is missing or not writable")


def check_cache() -> None:
    """The cache holds the rate-limit counters: without it, rate-limited requests answer 503."""
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    found = cache.get(key)
    cache.delete(key)
    if found != "ok":
        raise RuntimeError("the cache did not return what was stored")


def check_media() -> None:
    name = default_storage.save(f".readyz/{uuid.uuid4().hex}", ContentFile(b"ok"))
    default_storage.delete(name)


READINESS_CHECKS = {"database": check_database, "broker": check_broker, "cache": check_cache, "media": check_media}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
            logger.warning("readyz.check_failed", check=name, exc_type=type(exc).__name__)
            results[name] = "unavailable"
    failed = [name for name, state in results.items() if state != "ok"]
    if failed:
        return error_response(503, "not_ready", f"Not ready: {', '.join(failed)} unavailable.", {"checks": results})
    return JsonResponse({"status": "ready", "checks": results})
