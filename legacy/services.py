"""Legacy import: stage each collected image into media and ingest it as an album image, once.

Guarantees, and how:
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
import hashlib
import io
import os
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image as PILImage

from albums.image_files import ACCEPTED_FORMATS, FORMAT_ALIASES, describe_byte_limit, render_thumbnail, signature_format
from albums.models import Album, AlbumImage, AlbumSource, Image, ImageSource, ThumbnailJob
from albums.services import add_images_to_album, start_thumbnail_rebuild, unique_album_slug
from imagineer.core import jobs
from imagineer.core.errors import ImagineerError
from imagineer.core.logging import get_logger
from imagineer.core.models import JobStatus
from labeling.models import Label, LabelSource, LabelType, label_text_key
from labeling.tally import compact_label_tallies
from legacy.collectors import collect
from legacy.manifest import write_manifest
from legacy.models import AssetOutcome, ImportMode, ImportRun, LegacyAlbum, LegacyAsset
from legacy.records import Collection, LegacyRecord

logger = get_logger(__name__)


class MediaNotWritable(ImagineerError):
    code = "media_not_writable"


class NotAnImportableImage(Exception):
    """The file's bytes are not an image we store (corrupt, truncated, another format, too large)."""


# --- Stager ------------------------------------------------------------------------------------


def read_source(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their SHA-256: read once, then hashed, probed and copied from memory.

    Files over IMAGINEER_UPLOAD_MAX_BYTES are refused unread (the same limit as uploads).
    """
    limit = settings.IMAGINEER_UPLOAD_MAX_BYTES
    try:
        if path.stat().st_size > limit:
            raise NotAnImportableImage(f"larger than the {describe_byte_limit(limit)} limit")
        data = path.read_bytes()
    except OSError as exc:  # gone or unreadable since it was collected: this file only
        raise NotAnImportableImage(f"unreadable ({type(exc).__name__})") from exc
    return data, hashlib.sha256(data).hexdigest()


def probe_image(source: Path | bytes) -> tuple[str, int, int]:
    """(format, width, height) of a file we accept; NotAnImportableImage saying why otherwise.

    PNGs (nearly all legacy output) are checked with Pillow's verify(): structure and every chunk's
    CRC, so truncation and corruption are caught, at a fortieth of a full decode's cost. Other
    formats are decoded in full. The pixel limit (decompression bombs) is judged from the header.
    """
    max_pixels = settings.IMAGINEER_UPLOAD_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                fmt, (width, height) = FORMAT_ALIASES.get(img.format, img.format), img.size
                if fmt not in ACCEPTED_FORMATS:
                    raise NotAnImportableImage(f"a {fmt} image (accepted: {', '.join(sorted(ACCEPTED_FORMATS))})")
                if width * height > max_pixels:
                    raise NotAnImportableImage(f"{width}x{height} pixels, over the {max_pixels:,}-pixel limit")
                img.verify() if fmt == "PNG" else img.load()
    except NotAnImportableImage:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise NotAnImportableImage("declares more pixels than allowed (decompression bomb)") from exc
    except PILImage.UnidentifiedImageError as exc:
        if signature_format(_head(source)) is not None:
            raise NotAnImportableImage("corrupt or truncated image") from exc
        raise NotAnImportableImage("not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImportableImage("corrupt or truncated image") from exc
    return fmt, width, height


def _head(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:12]
    with source.open("rb") as handle:
        return handle.read(12)


def _ascii_slug(text: str, fallback: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return slugify(ascii_text)[:60].strip("-") or fallback


def media_name(record: LegacyRecord, sha256: str, fmt: str) -> str:
    """Deterministic: the same file always lands at the same name (what makes a rerun after a crash clean)."""
    stem = _ascii_slug(record.source_path.stem, "image")
    return f"legacy/{record.category}/{record.album_slug}/{stem}-{sha256[:16]}.{ACCEPTED_FORMATS[fmt]}"


def thumbnail_name(sha256: str) -> str:
    """Deterministic like media_name, for the same reason."""
    return f"thumbnails/legacy/{sha256[:2]}/{sha256}.webp"


def render_thumbnail_or_refuse(data: bytes) -> bytes:
    """The WebP thumbnail; decoding every pixel also catches what verify() cannot (bad image data)."""
    try:
        return render_thumbnail(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImportableImage("corrupt image data (it cannot be decoded)") from exc


def stage_thumbnail(thumbnail: bytes, sha256: str) -> str:
    name = thumbnail_name(sha256)
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(thumbnail))


def stage_file(record: LegacyRecord, data: bytes, name: str, *, mode: str) -> str:
    """Put the file into media at `name` (through Django storage), replacing a leftover of a killed run."""
    if default_storage.exists(name):
        default_storage.delete(name)  # no row points at it: only a crashed run writes before its row
    if mode == ImportMode.SYMLINK:
        target = Path(default_storage.path(name))  # local storage only (checked before the run)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(record.source_path.resolve(), target)
        return name
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:  # storage renamed it: another writer raced us for the name
        default_storage.delete(saved)
        raise ImagineerError(f"Media name {name} was taken while writing; run the import again.")
    return saved


def check_media_writable(mode: str) -> None:
    """Fail before any work when media cannot take files (the exit status says the run could not proceed)."""
    if mode == ImportMode.SYMLINK:
        try:
            default_storage.path("legacy")
        except NotImplementedError as exc:
            raise MediaNotWritable("--mode symlink needs local media storage; use --mode copy.") from exc
    probe = f"legacy/.write-check-{os.getpid()}"
    try:
        default_storage.delete(default_storage.save(probe, ContentFile(b"ok")))
    except OSError as exc:
        raise MediaNotWritable(f"Media storage is not writable ({type(exc).__name__}).") from exc


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
    now = timezone.now()
    return (
        ImportRun.objects.filter(status=JobStatus.RUNNING)
        .exclude(pk=except_run)
        .update(
            status=JobStatus.FAILED,
            finished_at=now,
            updated_at=now,
            error_message="Its process ended before the run finished (killed?). A later run completed its work.",
        )
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


# --- Albums ------------------------------------------------------------------------------------


@dataclass
class AlbumResolver:
    """Albums by stable key: found again on later runs, created once (album and key in one transaction)."""

    run: ImportRun | None
    known: dict[str, Album] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    reused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.known = {row.key: row.album for row in LegacyAlbum.objects.select_related("album")}

    def album_for(self, record: LegacyRecord) -> Album:
        album = self.known.get(record.album_key)
        if album is not None:
            if record.album_key not in self.created:
                self.reused.add(record.album_key)
            if record.album_private and album.is_public:
                # Named in --private-packs now: privacy only ever tightens, album and images alike.
                Album.objects.filter(pk=album.pk).update(is_public=False)
                Image.objects.filter(album_links__album=album).update(is_public=False)
                album.is_public = False
            return album
        with transaction.atomic():
            album = Album.objects.create(
                name=record.album_name,
                slug=unique_album_slug(record.album_name),
                description=record.album_description,
                album_type=record.album_type,
                is_public=not record.album_private,
                source_type=AlbumSource.LEGACY_IMPORT,
                source_id=self.run.pk if self.run else None,
            )
            LegacyAlbum.objects.create(key=record.album_key, album=album, created_by_run=self.run)
        self.known[record.album_key] = album
        self.created.add(record.album_key)
        return album


# --- Ingest ------------------------------------------------------------------------------------


@dataclass
class ImportState:
    """What one run knows up front (one query each) and counts as it goes."""

    assets: dict[str, tuple[int, int, int | None, str]]  # source path → (size, mtime_ns, image id, skip reason)
    links: set[tuple[int, int]]  # (album id, image id) already linked
    hashes: dict[str, int]  # sha256 → image id of every stored image (one query, not one per file)
    outcomes: Counter = field(default_factory=Counter)
    manifest: list[dict[str, Any]] = field(default_factory=list)
    staged: list[StagedImage] = field(default_factory=list)  # files in media, rows not yet written

    @classmethod
    def load(cls) -> ImportState:
        assets = {
            path: (size, mtime, image_id, reason)
            for path, size, mtime, image_id, reason in LegacyAsset.objects.values_list(
                "source_path", "size", "mtime_ns", "image_id", "reason"
            )
        }
        legacy_albums = LegacyAlbum.objects.values("album_id")
        links = set(AlbumImage.objects.filter(album_id__in=legacy_albums).values_list("album_id", "image_id"))
        return cls(assets=assets, links=links, hashes=dict(Image.objects.values_list("sha256", "pk")))


def _image_fields(record: LegacyRecord) -> dict[str, Any]:
    meta = record.metadata
    return {
        "prompt": meta.prompt,
        "negative_prompt": meta.negative_prompt,
        "model": meta.model[:255],
        "seed": meta.seed,
        "steps": meta.steps,
        "guidance_scale": meta.guidance_scale,
        "loras": [dict(lora) for lora in meta.loras],
    }


def _link(album: Album, image_id: int, state: ImportState) -> None:
    if (album.pk, image_id) not in state.links:
        add_images_to_album(album, [image_id])
        state.links.add((album.pk, image_id))
    if not album.is_public:
        # The same bytes in a private pack and elsewhere: the image is private (privacy wins).
        Image.objects.filter(pk=image_id, is_public=True).update(is_public=False)


@dataclass
class StagedImage:
    """A new image whose file is in media and whose rows are still to be written (in a batch)."""

    record: LegacyRecord
    album: Album
    sha256: str
    fmt: str
    width: int
    height: int
    name: str
    thumbnail: str


def ingest_record(
    record: LegacyRecord,
    album: Album,
    *,
    mode: str,
    run: ImportRun | None,
    state: ImportState,
    thumbnails: str,
    flush: Callable[[], None] = lambda: None,
) -> dict | StagedImage:
    """Take one file as far as it goes alone: a manifest entry, or a StagedImage for write_staged().

    Raises NotAnImportableImage for bytes we refuse. thumbnails="inline" makes the thumbnail with
    the file (before the row, like the file itself).
    """
    path = str(record.source_path)
    known = state.assets.get(path)
    if known and known[:2] == (record.size, record.mtime_ns):  # unchanged since last seen: no read, no hash
        if known[2] is None:
            raise NotAnImportableImage(known[3])
        _link(album, known[2], state)
        return {"outcome": str(AssetOutcome.ALREADY_PRESENT), "image_id": known[2]}

    if known and known[2] is not None and mode == ImportMode.SYMLINK:
        # Its media file is a symlink to this very path: the stored image would silently change.
        raise NotAnImportableImage("changed since it was imported; import changed files with --mode copy")
    data, sha256 = read_source(record.source_path)
    if any(item.sha256 == sha256 for item in state.staged):
        flush()  # the same bytes twice in one batch: the first one's row must exist to link to
    existing = state.hashes.get(sha256)
    if existing is not None:
        outcome = AssetOutcome.ALREADY_PRESENT if known and known[2] == existing else AssetOutcome.DUPLICATE
        with transaction.atomic():
            _link(album, existing, state)
            LegacyAsset.objects.filter(source_path=path).delete()
            LegacyAsset.objects.create(**_asset_fields(record, sha256, existing, album, outcome, run))
        state.assets[path] = (record.size, record.mtime_ns, existing, "")
        return {"outcome": str(outcome), "image_id": existing}

    try:
        fmt, width, height = probe_image(data)
    except NotAnImportableImage as exc:
        LegacyAsset.objects.filter(source_path=path).delete()
        LegacyAsset.objects.create(
            **_asset_fields(record, sha256, None, album, AssetOutcome.SKIPPED, run), reason=str(exc)[:255]
        )
        raise
    thumbnail_bytes = render_thumbnail_or_refuse(data) if thumbnails == "inline" else b""
    name = stage_file(record, data, media_name(record, sha256, fmt), mode=mode)
    thumbnail = stage_thumbnail(thumbnail_bytes, sha256) if thumbnail_bytes else ""
    return StagedImage(record, album, sha256, fmt, width, height, name, thumbnail)


def write_staged(staged: list[StagedImage], *, run: ImportRun | None, state: ImportState) -> list[dict]:
    """The rows of staged images, all or none: images, album links, caption labels, provenance.

    Returns their manifest entries. Should another process have stored the same bytes meanwhile
    (the unique hash refuses the batch), each is written alone and a clash becomes a duplicate.
    """
    if not staged:
        return []
    try:
        with transaction.atomic():
            images = Image.objects.bulk_create([_new_image(item) for item in staged])
            by_album: dict[int, tuple[Album, list[int]]] = {}
            for image, item in zip(images, staged, strict=True):
                by_album.setdefault(item.album.pk, (item.album, []))[1].append(image.pk)
            for album, ids in by_album.values():
                add_images_to_album(album, ids)
            Label.objects.bulk_create(
                [
                    Label(
                        image=image,
                        text=item.record.metadata.caption,
                        text_key=label_text_key(item.record.metadata.caption),
                        label_type=LabelType.CAPTION,
                        source=LabelSource.LEGACY_IMPORT,
                    )
                    for image, item in zip(images, staged, strict=True)
                    if item.record.metadata.caption
                ]
            )
            paths = [str(item.record.source_path) for item in staged]
            LegacyAsset.objects.filter(source_path__in=paths).delete()  # a changed file's old record
            LegacyAsset.objects.bulk_create(
                [
                    LegacyAsset(
                        **_asset_fields(item.record, item.sha256, image.pk, item.album, AssetOutcome.IMPORTED, run)
                    )
                    for image, item in zip(images, staged, strict=True)
                ]
            )
    except IntegrityError:
        if len(staged) > 1:
            return [entry for item in staged for entry in write_staged([item], run=run, state=state)]
        item = staged[0]
        stored = Image.objects.filter(sha256=item.sha256).values_list("pk", flat=True).first()
        if stored is None:
            raise  # not the bytes clashing: a real error, the run fails with it
        for written in (item.name, item.thumbnail):
            if written:
                default_storage.delete(written)
        state.hashes[item.sha256] = stored  # now a duplicate of what the other process stored
        # Now a duplicate: nothing is staged again, so mode and thumbnails do not matter here.
        result = ingest_record(item.record, item.album, mode=ImportMode.COPY, run=run, state=state, thumbnails="none")
        return [_entry(item.record, **result)]
    entries = []
    for image, item in zip(images, staged, strict=True):
        state.links.add((item.album.pk, image.pk))
        state.assets[str(item.record.source_path)] = (item.record.size, item.record.mtime_ns, image.pk, "")
        state.hashes[item.sha256] = image.pk
        entries.append(_entry(item.record, outcome=str(AssetOutcome.IMPORTED), image_id=image.pk))
    return entries


def _new_image(item: StagedImage) -> Image:
    return Image(
        file=item.name,
        thumbnail=item.thumbnail,
        sha256=item.sha256,
        width=item.width,
        height=item.height,
        format=item.fmt,
        file_size=item.record.size,
        original_filename=item.record.source_path.name[:255],
        source=ImageSource.LEGACY,
        is_public=not item.record.album_private,
        created_at=item.record.timestamp,  # when it was made
        **_image_fields(item.record),
    )


def _asset_fields(
    record: LegacyRecord, sha256: str, image_id: int | None, album: Album, outcome: str, run
) -> dict[str, Any]:
    return {
        "source_path": str(record.source_path),
        "root": record.root,
        "relative_path": record.relative_path,
        "size": record.size,
        "mtime_ns": record.mtime_ns,
        "timestamp": record.timestamp,
        "sha256": sha256,
        "image_id": image_id,
        "album": album,
        "outcome": outcome,
        "run": run,
    }


# --- Runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    outputs: Path | None = None
    packs: Path | None = None
    mode: str = ImportMode.COPY
    limit: int | None = None
    private_packs: tuple[str, ...] = ()
    thumbnails: str = "job"  # job | inline | none


def options_of(run: ImportRun) -> ImportOptions:
    return ImportOptions(
        outputs=Path(run.outputs_root) if run.outputs_root else None,
        packs=Path(run.packs_root) if run.packs_root else None,
        mode=run.mode,
        limit=run.limit,
        private_packs=tuple(run.private_packs),
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
        options.outputs, options.packs, private_packs=options.private_packs, limit=options.limit, known=known
    )


def _entry(record_or_path: LegacyRecord | str, root: str = "", **fields: Any) -> dict[str, Any]:
    if isinstance(record_or_path, LegacyRecord):
        return {"source": f"{record_or_path.root}/{record_or_path.relative_path}", "album": record_or_path.album_name,
                **fields}  # fmt: skip
    return {"source": f"{root}/{record_or_path}", **fields}


def import_collection(
    collection: Collection,
    *,
    mode: str,
    run: ImportRun | None,
    thumbnails: str = "none",
    progress: Callable[[int, int], None] | None = None,
) -> ImportState:
    """Stage and ingest every record; a refused file is recorded, never stops the rest."""
    state = ImportState.load()
    albums = AlbumResolver(run)
    staged = state.staged

    def flush() -> None:
        for entry in write_staged(staged, run=run, state=state):
            state.outcomes[entry["outcome"]] += 1
            state.manifest.append(entry)
        staged.clear()

    total = len(collection.records)
    for done, record in enumerate(collection.records, start=1):
        try:
            album = albums.album_for(record)
            result = ingest_record(record, album, mode=mode, run=run, state=state, thumbnails=thumbnails, flush=flush)
        except NotAnImportableImage as exc:
            result = {"outcome": "skipped", "reason": str(exc)}
        if isinstance(result, StagedImage):
            staged.append(result)
            if len(staged) >= settings.IMAGINEER_LEGACY_IMPORT_BATCH:
                flush()
        else:
            state.outcomes[result["outcome"]] += 1
            state.manifest.append(_entry(record, **result))
        if progress:
            progress(done, total)
    flush()
    for skipped in collection.skipped:
        state.outcomes["skipped"] += 1
        state.manifest.append(_entry(skipped.relative_path, skipped.root, outcome="skipped", reason=skipped.reason))
    for orphan in collection.orphan_sidecars:
        state.manifest.append(_entry(orphan.relative_path, orphan.root, outcome="orphan_sidecar"))
    state.outcomes["albums_created"] = len(albums.created)
    state.outcomes["albums_reused"] = len(albums.reused - albums.created)
    return state


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
                entries.append(_entry(record, outcome="skipped", reason=asset.reason))
                continue
            outcome, sha256 = str(AssetOutcome.ALREADY_PRESENT), asset.sha256
        else:
            try:
                data, sha256 = read_source(record.source_path)
                if asset and asset.sha256 == sha256 and asset.image_id:  # touched, same bytes
                    outcomes["already_present"] += 1
                    per_album[record.album_name] += 1
                    entries.append(_entry(record, outcome=str(AssetOutcome.ALREADY_PRESENT)))
                    continue
                duplicate = sha256 in seen or Image.objects.filter(sha256=sha256).exists()
                if not duplicate:
                    probe_image(data)
            except NotAnImportableImage as exc:
                outcomes["skipped"] += 1
                entries.append(_entry(record, outcome="skipped", reason=str(exc)))
                continue
            outcome = "duplicate" if duplicate else "would_import"
        seen.add(sha256)
        outcomes[outcome] += 1
        per_album[record.album_name] += 1
        entries.append(_entry(record, outcome=outcome))
    for skipped in collection.skipped:
        outcomes["skipped"] += 1
        entries.append(_entry(skipped.relative_path, skipped.root, outcome="skipped", reason=skipped.reason))
    for orphan in collection.orphan_sidecars:
        entries.append(_entry(orphan.relative_path, orphan.root, outcome="orphan_sidecar"))
    new_albums = {r.album_key for r in collection.records} - existing_keys
    return {
        "outcomes": dict(outcomes),
        "albums": dict(sorted(per_album.items())),
        "albums_to_create": len(new_albums),
        "orphan_sidecars": len(collection.orphan_sidecars),
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
    check_media_writable(options.mode)
    collection = collect_for(options)
    ImportRun.objects.filter(pk=run.pk).update(
        files_seen=len(collection.records), progress_total=len(collection.records)
    )
    run.progress_total = len(collection.records)

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            jobs.record_progress(run, done, total, f"{done}/{total} files")
        if progress:
            progress(done, total)

    state = import_collection(collection, mode=options.mode, run=run, thumbnails=thumbnails, progress=report)
    write_manifest(Path(run.manifest_path), state.manifest, summary={"run": run.pk, **state.outcomes})
    counts = state.outcomes
    ImportRun.objects.filter(pk=run.pk).update(
        imported_count=counts["imported"],
        already_present_count=counts["already_present"],
        duplicate_count=counts["duplicate"],
        skipped_count=counts["skipped"],
        orphan_sidecar_count=len(collection.orphan_sidecars),
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
