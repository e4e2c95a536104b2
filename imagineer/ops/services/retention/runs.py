"""Purge runs: starting one, taking its target, removing (or counting) the candidates, and
recording the counts on the run and its policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imagineer.core import jobs
from imagineer.core.logging import get_logger
from imagineer.core.models import JobStatus
from imagineer.ops.models import PurgeRun, RetentionPolicy
from imagineer.ops.services.retention.targets import BATCH, TARGETS, Target, describe_error

# The package's name as it was before the split into modules and the move into services/: LOG_LEVELS
# entries and log searches know it so.
logger = get_logger("imagineer.ops.retention")

SAMPLE_LIMIT = 200  # names kept in a run's details
ERROR_LIMIT = 50  # failures kept in a run's details (all are counted)


# --- Starting runs ---------------------------------------------------------------------------


def _new_run(policy: RetentionPolicy, *, user=None, dry_run: bool | None = None) -> PurgeRun:
    return PurgeRun.objects.create(
        policy=policy,
        target=policy.target,
        max_age_days=policy.max_age_days,
        dry_run=policy.dry_run if dry_run is None else dry_run,
        include_album_images=policy.include_album_images,
        created_by=user if user is not None and user.is_authenticated else None,
    )


def start_purge(policy: RetentionPolicy, *, user=None, dry_run: bool | None = None) -> PurgeRun:
    """ "Run now": a purge run of the policy as it is now, sent to the maintenance queue.

    `dry_run` overrides the policy's own setting for this run only. A disabled policy can still be
    run by hand: `enabled` only decides whether its schedule starts runs.
    """
    with transaction.atomic():
        run = _new_run(policy, user=user, dry_run=dry_run)
        jobs.enqueue_job(run)
    logger.info("retention.run_started", run_id=run.pk, policy_id=policy.pk, target=run.target, dry_run=run.dry_run)
    return run


def start_scheduled_purge(policy_id: int) -> PurgeRun | None:
    """The run a policy's schedule starts (run in place by the beat task); None if disabled or gone."""
    policy = RetentionPolicy.objects.filter(pk=policy_id).first()
    if policy is None:
        logger.warning("retention.policy_missing", policy_id=policy_id)
        return None
    if not policy.enabled:
        logger.info("retention.policy_disabled", policy_id=policy_id)
        return None
    return _new_run(policy)


# --- Running a purge -------------------------------------------------------------------------


@dataclass
class _Tally:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    sample: list[str] = field(default_factory=list)
    sampled_all: bool = True
    errors: list[dict[str, str]] = field(default_factory=list)
    error_count: int = 0

    def count(self, label: str, files: int, rows: int, size: int) -> None:
        self.files, self.rows, self.bytes = self.files + files, self.rows + rows, self.bytes + size
        if len(self.sample) < SAMPLE_LIMIT:
            self.sample.append(label)
        else:
            self.sampled_all = False

    def fail(self, label: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERROR_LIMIT:
            self.errors.append({"name": label, "error": message})


class _TargetBusy(Exception):
    def __init__(self, holder_id: int):
        self.holder_id = holder_id


def _take_target(run: PurgeRun) -> None:
    """Become the one real run of the run's target, or raise _TargetBusy naming the live holder."""
    fresh = timezone.now() - timedelta(seconds=settings.IMAGINEER_JOB_STALE_AFTER_SECONDS)
    running = PurgeRun.objects.filter(target=run.target, status=JobStatus.RUNNING)
    with transaction.atomic():
        # Every contender is running and locks all running rows of the target in pk order, so they
        # pass here one at a time (PostgreSQL); on SQLite the IMMEDIATE transaction does the same.
        list(running.select_for_update().order_by("pk").values_list("pk", flat=True))
        holder = (
            running.filter(dry_run=False, details__holds_target=True, heartbeat_at__gte=fresh)
            .exclude(pk=run.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if holder is not None:
            raise _TargetBusy(holder)
        jobs.update_job(run, details={"holds_target": True})


def _details(run: PurgeRun, target: Target, tally: _Tally, candidates: int, *, holding: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "candidates": candidates,
        "would_remove" if run.dry_run else "removed": tally.sample,
        "sample_complete": tally.sampled_all,
        "errors": tally.errors,
        "error_count": tally.error_count,
        **target.notes(),
    }
    if holding:
        details["holds_target"] = True
    return details


def _save_counts(run: PurgeRun, tally: _Tally, details: dict[str, Any]) -> None:
    jobs.update_job(run, files_removed=tally.files, rows_removed=tally.rows, bytes_freed=tally.bytes, details=details)


def _keep_partial_counts(run: PurgeRun, tally: _Tally) -> None:
    """On the way out of a failed or cancelled run: what it did remove stays on record.

    A run that was reaped meanwhile is not this worker's to write: its error is still the one raised.
    """
    sample_key = "would_remove" if run.dry_run else "removed"
    try:
        jobs.update_job(
            run,
            files_removed=tally.files,
            rows_removed=tally.rows,
            bytes_freed=tally.bytes,
            details={sample_key: tally.sample, "errors": tally.errors},
        )
    except jobs.JobLost:
        pass


def _record_on_policy(run: PurgeRun, tally: _Tally, status: str, error: str = "") -> None:
    errors = [f"{e['name']}: {e['error']}" for e in tally.errors[:5]] + ([error] if error else [])
    result = {
        "run_id": run.pk,
        "dry_run": run.dry_run,
        "files_removed": tally.files,
        "rows_removed": tally.rows,
        "bytes_freed": tally.bytes,
        "error_count": tally.error_count + bool(error),
        "errors": errors,
    }
    RetentionPolicy.objects.filter(pk=run.policy_id).update(
        last_run_at=timezone.now(), last_run_status=status, last_result=result
    )


def run_purge(run: PurgeRun) -> None:
    """Do one claimed purge run: list the target's candidates older than the run's age, remove them
    (or, dry run, only count them), and record the counts on the run and its policy."""
    cutoff = timezone.now() - timedelta(days=run.max_age_days)
    target = TARGETS[run.target](run, cutoff)
    tally = _Tally()
    log = logger.bind(run_id=run.pk, policy_id=run.policy_id, target=run.target, dry_run=run.dry_run)
    try:
        if not run.dry_run:
            _take_target(run)
        candidates = list(target.candidates())
        jobs.record_progress(run, 0, len(candidates), "Counting" if run.dry_run else "Removing")
        for start in range(0, len(candidates), BATCH):
            batch = candidates[start : start + BATCH]
            for candidate in batch if run.dry_run else target.recheck(batch):
                if run.dry_run:
                    tally.count(candidate.label, candidate.files, candidate.rows, candidate.size)
                    continue
                try:
                    removed = target.remove(candidate)
                except Exception as exc:  # noqa: BLE001 - one thing that will not go must not stop the rest
                    tally.fail(candidate.label, describe_error(exc))
                    continue
                if removed.files or removed.rows:
                    tally.count(candidate.label, removed.files, removed.rows, removed.bytes)
                if removed.error:
                    tally.fail(candidate.label, removed.error)
            done = min(start + BATCH, len(candidates))
            _save_counts(run, tally, _details(run, target, tally, len(candidates), holding=not run.dry_run))
            jobs.record_progress(run, done, len(candidates))
        _save_counts(run, tally, _details(run, target, tally, len(candidates), holding=False))
    except _TargetBusy as busy:
        message = f"Purge run #{busy.holder_id} of this target was already removing; this run removed nothing."
        _save_counts(run, tally, {"skipped": message})
        log.info("retention.run_skipped", holder_id=busy.holder_id)
        return
    except jobs.JobLost:
        raise
    except jobs.JobCancelled:
        _keep_partial_counts(run, tally)
        _record_on_policy(run, tally, JobStatus.CANCELLED)
        raise
    except Exception as exc:
        _keep_partial_counts(run, tally)
        _record_on_policy(run, tally, JobStatus.FAILED, describe_error(exc))
        raise
    _record_on_policy(run, tally, JobStatus.SUCCEEDED)
    log.info(
        "retention.run_finished",
        files=tally.files,
        rows=tally.rows,
        bytes=tally.bytes,
        errors=tally.error_count,
        candidates=len(candidates),
    )
