"""The importer's stager: reading a legacy file, judging its bytes, and putting it and its thumbnail into media.

Nothing here writes a database row. Media names are deterministic (album folder + name + hash), so
a file staged by a run killed before its row was written is written again, under the same name,
by the next run (what makes the import crash-safe; legacy/ingest.py writes the rows).
"""

from __future__ import annotations

import hashlib
import io
import os
import unicodedata
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import slugify

from albums.image_files import (
    ACCEPTED_FORMATS,
    ImageFacts,
    ImageTooLarge,
    UnsupportedImage,
    describe_byte_limit,
    inspect_image,
    render_thumbnail,
)
from imagineer.core.errors import ImagineerError
from legacy.models import ImportMode
from legacy.records import LegacyRecord


class MediaNotWritable(ImagineerError):
    code = "media_not_writable"


class NotAnImportableImage(Exception):
    """The file's bytes are not an image we store (corrupt, truncated, another format, too large)."""


def read_source(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their SHA-256: read once, then hashed, inspected and copied from memory.

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


def inspect_or_refuse(data: bytes, sha256: str) -> ImageFacts:
    """What the bytes are, judged as every upload is (albums.image_files.inspect_image); refused with its reason.

    PNGs (nearly all legacy output) take inspect_image's fast check (structure and chunk CRCs, not
    a full decode); the bytes were hashed when read, so they are not hashed again.
    """
    try:
        return inspect_image(io.BytesIO(data), name="the file", verify_png=True, sha256=sha256)
    except (UnsupportedImage, ImageTooLarge) as exc:
        raise NotAnImportableImage(exc.message) from exc


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
