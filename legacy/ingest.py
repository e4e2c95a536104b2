"""The importer's ingest: the rows of staged files, written once and fast.

Albums are found again by their stable key or created once (ImportedAlbums). A new file's image
row, album link, caption label and provenance (LegacyAsset) are written in batches, all or none,
after its file is staged; bytes already stored (SHA-256, from any source) are linked as a
duplicate instead. What one run knows up front is loaded in one query each (ImportState), so a
rerun skips an unchanged file without reading it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from albums.models import Album, AlbumImage, AlbumSource, Image, ImageSource, NsfwCheck
from albums.services import (
    add_images_to_album,
    new_image_check_fields,
    request_nsfw_checks_on_commit,
    unique_album_slug,
)
from labeling.models import Label, LabelSource, LabelType, label_text_key
from legacy import stager
from legacy.manifest import manifest_entry
from legacy.models import AssetOutcome, ImportMode, ImportRun, LegacyAlbum, LegacyAsset
from legacy.records import Collection, LegacyRecord
from legacy.stager import NotAnImportableImage


@dataclass
class ImportedAlbums:
    """The Album rows an import puts its images in, by stable key: found again on later runs, or created once.

    Album and key are created in one transaction. (legacy/resolver.py decides a record's key from its
    path; this finds or makes the album for that key.)
    """

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
    data, sha256 = stager.read_source(record.source_path)
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
        facts = stager.inspect_or_refuse(data, sha256)
    except NotAnImportableImage as exc:
        LegacyAsset.objects.filter(source_path=path).delete()
        LegacyAsset.objects.create(
            **_asset_fields(record, sha256, None, album, AssetOutcome.SKIPPED, run), reason=str(exc)[:255]
        )
        raise
    thumbnail_bytes = stager.render_thumbnail_or_refuse(data) if thumbnails == "inline" else b""
    name = stager.stage_file(record, data, stager.media_name(record, sha256, facts.format), mode=mode)
    thumbnail = stager.stage_thumbnail(thumbnail_bytes, sha256) if thumbnail_bytes else ""
    return StagedImage(record, album, sha256, facts.format, facts.width, facts.height, name, thumbnail)


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
            # Public ones are checked for NSFW before anyone sees them (one check job per batch).
            request_nsfw_checks_on_commit([image.pk for image in images if image.nsfw_check == NsfwCheck.PENDING])
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
        return [manifest_entry(item.record, **result)]
    entries = []
    for image, item in zip(images, staged, strict=True):
        state.links.add((item.album.pk, image.pk))
        state.assets[str(item.record.source_path)] = (item.record.size, item.record.mtime_ns, image.pk, "")
        state.hashes[item.sha256] = image.pk
        entries.append(manifest_entry(item.record, outcome=str(AssetOutcome.IMPORTED), image_id=image.pk))
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
        **new_image_check_fields(is_public=not item.record.album_private),
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
    albums = ImportedAlbums(run)
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
            state.manifest.append(manifest_entry(record, **result))
        if progress:
            progress(done, total)
    flush()
    for skipped in collection.skipped:
        state.outcomes["skipped"] += 1
        state.manifest.append(
            manifest_entry(skipped.relative_path, skipped.root, outcome="skipped", reason=skipped.reason)
        )
    for orphan in collection.orphan_sidecars:
        state.manifest.append(manifest_entry(orphan.relative_path, orphan.root, outcome="orphan_sidecar"))
    state.outcomes["albums_created"] = len(albums.created)
    state.outcomes["albums_reused"] = len(albums.reused - albums.created)
    return state
