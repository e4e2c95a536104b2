"""What each retention target lists as candidates, and how it removes one of them.

A target lists what is older than the run's cutoff (`candidates`), may check a batch again just
before removal (`recheck`), and removes one candidate (`remove`), tolerating a thing already gone
and re-checking age first. Local folders are walked without following symbolic links; media goes
through Django storage.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from albums import services as albums_services
from albums.models import AlbumImage, Image, ImageSource
from imagineer.core import jobs
from imagineer.ops.models import BugReport, DiskSnapshot, PurgeRun, RetentionTarget
from imagineer.ops.services.media_folders import MEDIA_SUBFOLDERS

BATCH = 200  # removals between progress reports (each one checks for a cancel)
# Under IMAGINEER_TRAINING_DIR only these are purged; trained outputs elsewhere there are kept.
TRAINING_PURGED_DIRS = ("scratch", "logs")


@dataclass(frozen=True)
class Candidate:
    label: str  # what an operator reads: a name relative to its root, or a row's id
    key: Any  # what the target needs to remove it: a local path, a storage name, a primary key
    files: int = 0
    rows: int = 0
    size: int = 0


@dataclass
class Removed:
    files: int = 0
    rows: int = 0
    bytes: int = 0
    error: str = ""  # the row went but something after it failed (reported, still counted)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


def _lstat(path: str | Path) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else None  # no fifos, sockets


def _bytes_of(st: os.stat_result) -> int:
    return st.st_size if stat.S_ISREG(st.st_mode) else 0  # removing a link frees no data


def _local_path(name: str) -> str | None:
    """The file's local path when media is a local folder; None for remote storage (S3 ...).

    Asked of the class, not of path(): some storages answer path() with a name that is no real file.
    """
    return default_storage.path(name) if isinstance(default_storage, FileSystemStorage) else None


def _stored_file(name: str) -> tuple[int, datetime] | None:
    """(bytes, modified) of a media file, None if it is not there. A link is measured, not followed."""
    path = _local_path(name)
    if path is not None:
        st = _lstat(path)
        return None if st is None else (_bytes_of(st), _mtime(st))
    if not default_storage.exists(name):
        return None
    modified = default_storage.get_modified_time(name)
    if timezone.is_naive(modified):
        modified = timezone.make_aware(modified, UTC)
    return default_storage.size(name), modified


def _delete_stored_file(name: str) -> bool:
    """Remove one media file; False when it was already gone (someone else removed it)."""
    path = _local_path(name)
    if path is not None:
        try:
            os.remove(path)  # a link: the link itself, never what it points at
        except FileNotFoundError:
            return False
        return True
    if not default_storage.exists(name):
        return False
    default_storage.delete(name)
    return True


class Target:
    """One target's candidates for a run (older than `cutoff`) and their removal."""

    def __init__(self, run: PurgeRun, cutoff: datetime):
        self.run, self.cutoff = run, cutoff

    def candidates(self) -> Iterator[Candidate]:
        raise NotImplementedError

    def recheck(self, batch: list[Candidate]) -> list[Candidate]:
        """The candidates of a batch that may still go, just before they are removed."""
        return batch

    def remove(self, candidate: Candidate) -> Removed:
        raise NotImplementedError

    def notes(self) -> dict[str, Any]:
        return {}


class _LocalFiles(Target):
    """Files under a local folder older than the cutoff; symbolic links are removed, never followed."""

    root: Path
    folders: Sequence[str] = ("",)

    def candidates(self) -> Iterator[Candidate]:
        for folder in self.folders:
            top = self.root / folder
            if folder and top.is_symlink():
                continue
            # followlinks=False: a linked folder is listed among the dirnames and never entered.
            for dirpath, _dirnames, filenames in os.walk(top, followlinks=False):
                for filename in sorted(filenames):
                    path = Path(dirpath) / filename
                    st = _lstat(path)
                    if st is not None and _mtime(st) < self.cutoff:
                        label = path.relative_to(self.root).as_posix()
                        yield Candidate(label=label, key=path, files=1, size=_bytes_of(st))

    def remove(self, candidate: Candidate) -> Removed:
        st = _lstat(candidate.key)
        if st is None or _mtime(st) >= self.cutoff:  # gone, or written again meanwhile
            return Removed()
        try:
            os.remove(candidate.key)
        except FileNotFoundError:
            return Removed()
        return Removed(files=1, bytes=_bytes_of(st))

    def notes(self) -> dict[str, Any]:
        return {} if self.root.is_dir() else {"note": "The folder does not exist (yet): nothing to remove."}


class _GenerationScratch(_LocalFiles):
    @property
    def root(self) -> Path:
        return Path(settings.IMAGINEER_SCRATCH_DIR)


class _TrainingArtifacts(_LocalFiles):
    folders = TRAINING_PURGED_DIRS

    @property
    def root(self) -> Path:
        return Path(settings.IMAGINEER_TRAINING_DIR)


def file_fields() -> list[tuple[type[models.Model], str]]:
    """Every FileField (ImageField included) of every installed model: whatever may name a media file."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        found += [(model, f.name) for f in model._meta.local_fields if isinstance(f, models.FileField)]
    return found


def referenced_names(names: Sequence[str]) -> set[str]:
    """Those of `names` some row's FileField refers to."""
    referenced: set[str] = set()
    for model, name in file_fields():
        referenced.update(model._base_manager.filter(**{f"{name}__in": names}).values_list(name, flat=True))
    return referenced


def _storage_names(folder: str = "") -> Iterator[str]:
    """Every file name in media storage, depth first; linked folders are not entered."""
    try:
        dirnames, filenames = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for dirname in sorted(dirnames):
        sub = f"{folder}/{dirname}" if folder else dirname
        path = _local_path(sub)
        if path is not None and os.path.islink(path):
            continue
        yield from _storage_names(sub)
    for filename in sorted(filenames):
        yield f"{folder}/{filename}" if folder else filename


class _OrphanedMedia(Target):
    def candidates(self) -> Iterator[Candidate]:
        # Only the folders the app writes media into: anything else under the media root (a data
        # dir, model cache or config file that a deployment put there) is never a candidate.
        names: list[str] = []
        for name in (found for folder in MEDIA_SUBFOLDERS for found in _storage_names(folder)):
            names.append(name)
            if len(names) >= BATCH:
                yield from self._old_and_unreferenced(names)
                names = []
        yield from self._old_and_unreferenced(names)

    def _old_and_unreferenced(self, names: list[str]) -> Iterator[Candidate]:
        # References first: most files have a row, and measuring a file can be a request (S3).
        referenced = referenced_names(names) if names else set()
        for name in names:
            if name not in referenced and (found := _stored_file(name)) is not None and found[1] < self.cutoff:
                yield Candidate(label=name, key=name, files=1, size=found[0])

    def recheck(self, batch: list[Candidate]) -> list[Candidate]:
        if not batch:
            return batch
        referenced = referenced_names([c.key for c in batch])
        return [c for c in batch if c.key not in referenced]

    def remove(self, candidate: Candidate) -> Removed:
        found = _stored_file(candidate.key)
        if found is None or found[1] >= self.cutoff:
            return Removed()
        return Removed(files=1, bytes=found[0]) if _delete_stored_file(candidate.key) else Removed()


class _ScrapedImages(Target):
    def images(self):
        images = Image.objects.filter(source=ImageSource.SCRAPED, created_at__lt=self.cutoff)
        if not self.run.include_album_images:
            images = images.filter(~Exists(AlbumImage.objects.filter(image=OuterRef("pk"))))
        return images

    def candidates(self) -> Iterator[Candidate]:
        for pk, *names in self.images().order_by("pk").values_list("pk", "file", "thumbnail").iterator():
            found = [f for f in map(_stored_file, filter(None, names)) if f is not None]
            label = f"image #{pk} ({names[0]})"
            yield Candidate(label=label, key=pk, rows=1, files=len(found), size=sum(f[0] for f in found))

    def remove(self, candidate: Candidate) -> Removed:
        present: dict[str, int] = {}
        row_gone = False
        try:
            with transaction.atomic():
                # Locked and checked again: an image added to an album meanwhile is not this target's.
                image = self.images().select_for_update().filter(pk=candidate.key).first()
                if image is None:
                    return Removed()
                for name in filter(None, [image.file.name, image.thumbnail.name]):
                    if (found := _stored_file(name)) is not None:
                        present[name] = found[0]
                albums_services.delete_image(image)  # files go once the row's deletion commits
                row_gone = True
        except Exception as exc:  # noqa: BLE001 - the row may be gone already: count it, report the rest
            if not row_gone:
                raise
            return Removed(rows=1, error=describe_error(exc))
        gone = [name for name in present if _stored_file(name) is None]
        return Removed(rows=1, files=len(gone), bytes=sum(present[name] for name in gone))

    def notes(self) -> dict[str, Any]:
        if self.run.include_album_images:
            return {}
        kept = Image.objects.filter(source=ImageSource.SCRAPED, created_at__lt=self.cutoff, album_links__isnull=False)
        return {"album_images_kept": kept.distinct().count()}


class _BugReports(Target):
    def candidates(self) -> Iterator[Candidate]:
        reports = BugReport.objects.filter(created_at__lt=self.cutoff).order_by("pk")
        for pk, report_id, screenshot in reports.values_list("pk", "report_id", "screenshot").iterator():
            found = _stored_file(screenshot) if screenshot else None
            yield Candidate(
                label=report_id, key=pk, rows=1, files=int(found is not None), size=found[0] if found else 0
            )

    def remove(self, candidate: Candidate) -> Removed:
        with transaction.atomic():
            report = BugReport.objects.select_for_update().filter(pk=candidate.key, created_at__lt=self.cutoff).first()
            if report is None:
                return Removed()
            screenshot = report.screenshot.name
            report.delete()
        removed = Removed(rows=1)
        # The row is gone (committed): its screenshot belongs to nobody now.
        if screenshot and (found := _stored_file(screenshot)) is not None and _delete_stored_file(screenshot):
            removed.files, removed.bytes = 1, found[0]
        return removed


class _DiskSnapshots(Target):
    def __init__(self, run: PurgeRun, cutoff: datetime):
        super().__init__(run, cutoff)
        self.newest = DiskSnapshot.objects.order_by("-taken_at", "-pk").values_list("pk", flat=True).first()

    def snapshots(self):
        return DiskSnapshot.objects.filter(taken_at__lt=self.cutoff).exclude(pk=self.newest)

    def candidates(self) -> Iterator[Candidate]:
        for pk, taken_at in self.snapshots().order_by("pk").values_list("pk", "taken_at").iterator():
            yield Candidate(label=f"disk snapshot #{pk} ({taken_at:%Y-%m-%d %H:%M} UTC)", key=pk, rows=1)

    def remove(self, candidate: Candidate) -> Removed:
        _, deleted = self.snapshots().filter(pk=candidate.key).delete()
        return Removed(rows=deleted.get(DiskSnapshot._meta.label, 0))


TARGETS: dict[str, type[Target]] = {
    RetentionTarget.GENERATION_SCRATCH: _GenerationScratch,
    RetentionTarget.ORPHANED_MEDIA: _OrphanedMedia,
    RetentionTarget.SCRAPED_UNALBUMED: _ScrapedImages,
    RetentionTarget.TRAINING_ARTIFACTS: _TrainingArtifacts,
    RetentionTarget.BUG_REPORTS: _BugReports,
    RetentionTarget.DISK_SNAPSHOTS: _DiskSnapshots,
}


def describe_error(exc: Exception) -> str:
    """A failure as a run's details and results show it: never a filesystem path."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"  # str(OSError) carries the path
    return jobs.describe_failure(exc)
