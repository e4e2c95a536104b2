"""Legacy import runs: options, the dry-run plan, one import at a time, and what a killed run left.

The stages a run drives live beside this module: legacy/collectors.py finds the files and their
metadata, legacy/stager.py reads, judges and stages each file into media, legacy/ingest.py writes
their rows. Guarantees, and how:
- **No duplicates.** Bytes are identified by SHA-256 (unique on albums.Image): a file whose bytes are
  already stored, from this run, an earlier one or any other source, is linked to its album and
  recorded as a duplicate; no second file or row is made.
- **Idempotent and fast again.** Every imported source file has a LegacyAsset (path, size, mtime,
  sha256, image). A later run loads them all at once and skips a file whose size and mtime are
  unchanged without reading it; albums are found again by their stable key (LegacyAlbum).
- **Crash-safe.** A file's media name is deterministic (album folder + name + hash), and its row,
  album link, caption label and LegacyAsset are written in one transaction after the file. A run
  killed in between leaves at most a file that the next run writes again under the same name; so
  killed-and-rerun ends exactly as one clean run.
"""

from __future__ import annotations

import fcntl
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from albums.models import Image, ThumbnailJob
from albums.services import start_thumbnail_rebuild
from imagineer.core import jobs
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.models import JobStatus
from labeling.tally import compact_label_tallies
from legacy import stager
from legacy.collectors import LINK_OUTSIDE_ROOTS, collect
from legacy.ingest import import_collection
from legacy.manifest import manifest_entry, write_manifest
from legacy.models import AssetOutcome, ImportMode, ImportRun, LegacyAlbum, LegacyAsset
from legacy.records import Collection
from legacy.stager import NotAnImportableImage

logger = get_logger(__name__)


# --- One import at a time, and what a killed one left ------------------------------------------


class ImportAlreadyRunning(ImagineerError):
    status_code = 409
    code = "import_running"


@contextmanager
def import_lock() -> Iterator[None]:
    """One import at a time on this machine: a file lock, which the OS releases even on kill -9.

    Media names are deterministic, so two imports of the same tree would overwrite (and, on a clash,
    delete) each other's files.
    """
    path = Path(settings.DATA_DIR) / "legacy" / "import.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ImportAlreadyRunning(
                "Another legacy import is running on this machine; let it finish first."
            ) from exc
        yield


def end_dead_import_runs(*, except_run: int | None = None) -> int:
    """With the lock held, any other run still marked running has no process: mark it failed."""
    return jobs.fail_running_jobs(
        ImportRun,
        "Its process ended before the run finished (killed?). A later run completed its work.",
        except_pk=except_run,
    )


def sweep_unreferenced_media() -> int:
    """Delete files under the importer's media folders that no image row names: a killed run's."""
    referenced = set(Image.objects.filter(file__startswith="legacy/").values_list("file", flat=True))
    referenced |= set(
        Image.objects.filter(thumbnail__startswith="thumbnails/legacy/").values_list("thumbnail", flat=True)
    )
    removed = 0
    for top in ("legacy", "thumbnails/legacy"):
        for name in _walk_storage(top):
            if name not in referenced:
                default_storage.delete(name)
                removed += 1
    if removed:
        logger.warning("legacy.orphans_removed", count=removed)
    return removed


def _walk_storage(folder: str) -> Iterator[str]:
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    yield from (f"{folder}/{name}" for name in files)
    for sub in folders:
        yield from _walk_storage(f"{folder}/{sub}")


# --- Runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    outputs: Path | None = None
    packs: Path | None = None
    mode: str = ImportMode.COPY
    limit: int | None = None
    private_packs: tuple[str, ...] = ()
    thumbnails: str = "job"  # job | inline | none
    follow_links_outside: bool = False  # the command's --follow-links-outside only; no API sets it


def options_of(run: ImportRun) -> ImportOptions:
    return ImportOptions(
        outputs=Path(run.outputs_root) if run.outputs_root else None,
        packs=Path(run.packs_root) if run.packs_root else None,
        mode=run.mode,
        limit=run.limit,
        private_packs=tuple(run.private_packs),
        follow_links_outside=run.follow_links_outside,
    )


def collect_for(options: ImportOptions) -> Collection:
    """Collect the roots; files known unchanged since an earlier run are not opened again."""
    known = {
        path: (size, mtime_ns, timestamp)
        for path, size, mtime_ns, timestamp in LegacyAsset.objects.filter(timestamp__isnull=False).values_list(
            "source_path", "size", "mtime_ns", "timestamp"
        )
    }
    return collect(
        options.outputs,
        options.packs,
        private_packs=options.private_packs,
        limit=options.limit,
        known=known,
        follow_links_outside=options.follow_links_outside,
    )


def count_links_outside(collection: Collection) -> int:
    """Symlinks the walk did not follow because they point outside the roots."""
    return sum(1 for skipped in collection.skipped if skipped.reason == LINK_OUTSIDE_ROOTS)


def plan_collection(collection: Collection) -> dict[str, Any]:
    """The dry run: what an import would do, from reading and hashing everything; writes nothing."""
    known = {
        a.source_path: a
        for a in LegacyAsset.objects.only("source_path", "size", "mtime_ns", "sha256", "image_id", "reason")
    }
    seen: set[str] = set()  # hashes this plan already counted
    per_album: Counter = Counter()
    outcomes: Counter = Counter()
    entries = []
    existing_keys = set(LegacyAlbum.objects.values_list("key", flat=True))
    for record in collection.records:
        asset = known.get(str(record.source_path))
        if asset and (asset.size, asset.mtime_ns) == (record.size, record.mtime_ns):
            if asset.image_id is None:
                outcomes["skipped"] += 1
                entries.append(manifest_entry(record, outcome="skipped", reason=asset.reason))
                continue
            outcome, sha256 = str(AssetOutcome.ALREADY_PRESENT), asset.sha256
        else:
            try:
                data, sha256 = stager.read_source(record.source_path)
                if asset and asset.sha256 == sha256 and asset.image_id:  # touched, same bytes
                    outcomes["already_present"] += 1
                    per_album[record.album_name] += 1
                    entries.append(manifest_entry(record, outcome=str(AssetOutcome.ALREADY_PRESENT)))
                    continue
                duplicate = sha256 in seen or Image.objects.filter(sha256=sha256).exists()
                if not duplicate:
                    stager.inspect_or_refuse(data, sha256)
            except NotAnImportableImage as exc:
                outcomes["skipped"] += 1
                entries.append(manifest_entry(record, outcome="skipped", reason=str(exc)))
                continue
            outcome = "duplicate" if duplicate else "would_import"
        seen.add(sha256)
        outcomes[outcome] += 1
        per_album[record.album_name] += 1
        entries.append(manifest_entry(record, outcome=outcome))
    for skipped in collection.skipped:
        outcomes["skipped"] += 1
        entries.append(manifest_entry(skipped.relative_path, skipped.root, outcome="skipped", reason=skipped.reason))
    for orphan in collection.orphan_sidecars:
        entries.append(manifest_entry(orphan.relative_path, orphan.root, outcome="orphan_sidecar"))
    new_albums = {r.album_key for r in collection.records} - existing_keys
    return {
        "outcomes": dict(outcomes),
        "albums": dict(sorted(per_album.items())),
        "albums_to_create": len(new_albums),
        "orphan_sidecars": len(collection.orphan_sidecars),
        "links_outside": count_links_outside(collection),
        "entries": entries,
    }


def start_import_run(options: ImportOptions, *, manifest_path: Path, user=None) -> ImportRun:
    """The run's row, queued: the command claims and runs it in its own process (run_job)."""
    return ImportRun.objects.create(
        outputs_root=str(options.outputs or ""),
        packs_root=str(options.packs or ""),
        mode=options.mode,
        limit=options.limit,
        private_packs=list(options.private_packs),
        follow_links_outside=options.follow_links_outside,
        manifest_path=str(manifest_path),
        created_by=user if user is not None and user.is_authenticated else None,
    )


def run_import(run: ImportRun, *, progress: Callable[[int, int], None] | None = None, thumbnails: str = "job") -> None:
    """Job body: collect, import, write the manifest, record the counts, thumbnails as asked."""
    with import_lock():
        ended_dead = end_dead_import_runs(except_run=run.pk)
        if ended_dead or _may_have_left_staged_files(run):
            sweep_unreferenced_media()
        _run_import_locked(run, progress=progress, thumbnails=thumbnails)


def _may_have_left_staged_files(run: ImportRun) -> bool:
    """An earlier attempt of this run, or the run before it, ended without succeeding.

    A killed run the reaper failed first (a worker lost under a retried run, a command killed and
    not rerun within the stale-job limit) is no longer `running`, so end_dead_import_runs does not
    see it; nor does it see a run that failed or was cancelled between staging files and writing
    their rows.
    """
    if run.attempts > 1:
        return True
    previous = ImportRun.objects.filter(pk__lt=run.pk).order_by("-pk").values_list("status", flat=True).first()
    return previous is not None and previous != JobStatus.SUCCEEDED


def _run_import_locked(run: ImportRun, *, progress: Callable[[int, int], None] | None, thumbnails: str) -> None:
    options = options_of(run)
    stager.check_media_writable(options.mode)
    collection = collect_for(options)
    jobs.update_job(run, files_seen=len(collection.records), progress_total=len(collection.records))

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            jobs.record_progress(run, done, total, f"{done}/{total} files")
        if progress:
            progress(done, total)

    state = import_collection(collection, mode=options.mode, run=run, thumbnails=thumbnails, progress=report)
    links_outside = count_links_outside(collection)
    write_manifest(
        Path(run.manifest_path),
        state.manifest,
        summary={
            "run": run.pk,
            **state.outcomes,
            "links_outside": links_outside,
            "follow_links_outside": options.follow_links_outside,
        },
    )
    counts = state.outcomes
    jobs.update_job(
        run,
        imported_count=counts["imported"],
        already_present_count=counts["already_present"],
        duplicate_count=counts["duplicate"],
        skipped_count=counts["skipped"],
        orphan_sidecar_count=len(collection.orphan_sidecars),
        links_outside_count=links_outside,
        albums_created=counts["albums_created"],
        albums_reused=counts["albums_reused"],
        skipped=[{"path": e["source"], "reason": e["reason"]} for e in state.manifest if e["outcome"] == "skipped"],
    )
    # Fold the labels just written (captions, A1111 prompts) into the analytics tally here, so
    # the first analytics read after a big import does not pay for it (labeling/tally.py).
    compact_label_tallies()
    if thumbnails == "job":
        queue_missing_thumbnails()
    logger.info("legacy.import_done", run_id=run.pk, **{k: v for k, v in counts.items()})


def queue_missing_thumbnails() -> None:
    """Thumbnail jobs for every imported image still without one (a killed run's included)."""
    pending = {
        pk
        for ids in ThumbnailJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).values_list(
            "image_ids", flat=True
        )
        for pk in ids
    }
    missing = Image.objects.filter(legacy_assets__isnull=False, thumbnail="").values_list("pk", flat=True).distinct()
    ids = [pk for pk in missing if pk not in pending]
    for start in range(0, len(ids), 5000):  # the job's own limit on ids
        start_thumbnail_rebuild(ids[start : start + 5000])
