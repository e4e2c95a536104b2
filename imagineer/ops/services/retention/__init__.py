"""Retention: remove what a policy targets once it is older than the policy's max age.

A purge run snapshots its policy (target, age, dry run, album rule), lists the candidates, then
removes them one by one, counting only what it actually removed. Safety, in the order it applies:
- **Album images** are never removed unless the run says `include_album_images`; the album check is
  repeated on the locked row just before each image is deleted.
- **Dry run** lists the same candidates and counts them (files, rows, bytes), removing nothing.
- **One real run per target at a time.** A run takes the target in a short transaction (the
  target's running purge rows locked FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions
  serialise it) and marks itself the holder; a second run that finds a live holder ends at once
  having removed nothing. A holder whose heartbeat went stale (worker killed) no longer counts.
  A long transaction would have been simpler, but on SQLite it would hold the one write lock (and
  block every request) for as long as the purge runs.
- **Every removal tolerates a thing already gone** and re-checks age (and references, for media)
  just before it, so a file touched or re-used meanwhile stays.
- **No filesystem path leaves this package**: details name files relative to their root (media
  storage names, scratch- or training-relative paths) and rows by id.
Media goes through Django storage (so S3 works); scratch and training folders are local paths,
walked without following symbolic links. Directories are never removed.

Modules:
- `targets`: what each target lists as candidates and how it removes one.
- `runs`: starting runs, taking a target, running a purge, recording its result on the policy.
- `schedules`: saving and deleting policies with their django-celery-beat PeriodicTask.
"""

from imagineer.ops.services.retention.runs import (
    ERROR_LIMIT,
    SAMPLE_LIMIT,
    run_purge,
    start_purge,
    start_scheduled_purge,
)
from imagineer.ops.services.retention.schedules import (
    DEFAULT_SCHEDULE,
    RUN_POLICY_TASK,
    default_max_age_days,
    delete_policy,
    ensure_policy_schedule,
    save_policy,
    schedule_name,
    sync_policy_schedule,
)
from imagineer.ops.services.retention.targets import (
    BATCH,
    TARGETS,
    TRAINING_PURGED_DIRS,
    Candidate,
    Removed,
    Target,
    file_fields,
    referenced_names,
)

__all__ = [
    "BATCH",
    "DEFAULT_SCHEDULE",
    "ERROR_LIMIT",
    "RUN_POLICY_TASK",
    "SAMPLE_LIMIT",
    "TARGETS",
    "TRAINING_PURGED_DIRS",
    "Candidate",
    "Removed",
    "Target",
    "default_max_age_days",
    "delete_policy",
    "ensure_policy_schedule",
    "file_fields",
    "referenced_names",
    "run_purge",
    "save_policy",
    "schedule_name",
    "start_purge",
    "start_scheduled_purge",
    "sync_policy_schedule",
]
