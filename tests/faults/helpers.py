"""Waiting on job rows, and comparing media storage with the rows that name its files."""

import time
from datetime import timedelta

from imagineer.core import jobs
from imagineer.ops.services.retention.targets import file_fields

REAP_AFTER = timedelta(seconds=2)


def wait_until(condition, timeout: float, message, interval: float = 0.02):
    """Poll `condition` until it answers something true (returned); `message` may be a callable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(message() if callable(message) else message)


def wait_final(job, worker, timeout: float = 240):
    def final():
        job.refresh_from_db()
        return job.is_final

    wait_until(final, timeout, lambda: f"job still {job.status}:\n{worker.watcher.text[-3000:]}", interval=0.2)
    return job


def reap_when_stale(job) -> None:
    """The reaper, with a short stale_after, once the dead worker's last heartbeat is old enough."""
    job.refresh_from_db()
    time.sleep(max(0.0, (job.heartbeat_at + REAP_AFTER).timestamp() - time.time()) + 0.2)
    assert jobs.reap_stale_jobs(REAP_AFTER) == 1


def stored_files(root) -> set[str]:
    """Every file under media (the readiness probe's folder aside)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".readyz" not in p.parts}


def media_and_rows_agree(media) -> tuple[set[str], set[str]]:
    """(files no row names, names no file backs) over every FileField of every model."""
    names = set()
    for model, field in file_fields():
        names |= set(model._base_manager.exclude(**{field: ""}).values_list(field, flat=True))
    files = stored_files(media)
    return files - names, names - files
