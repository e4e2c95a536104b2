"""The stager's pieces that need no database: what a file is, and where it lands in media."""

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image as PILImage

from legacy.records import ImageMetadata, LegacyRecord
from legacy.stager import NotAnImportableImage, inspect_or_refuse, media_name, thumbnail_name
from tests.factories import png_bomb_bytes


def record(path: Path, category="decks", slug="card-deck-x") -> LegacyRecord:
    return LegacyRecord(
        source_path=path,
        root="outputs",
        relative_path=path.name,
        category=category,
        album_key="k",
        album_name="n",
        album_slug=slug,
        album_type="deck",
        album_private=False,
        album_description="",
        timestamp=datetime.now(UTC),
        timestamp_source="mtime",
        size=1,
        mtime_ns=1,
        metadata=ImageMetadata(),
    )


def encoded(fmt: str, size: tuple[int, int] = (20, 10)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, (1, 2, 3)).save(out, fmt)
    return out.getvalue()


def corrupted_png() -> bytes:
    data = bytearray(encoded("PNG"))
    data[data.index(b"IDAT") + 6] ^= 0xFF  # one byte of pixel data: the chunk's CRC no longer matches
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_inspection_reads_format_and_size(fmt):
    data = encoded(fmt)
    facts = inspect_or_refuse(data, hashlib.sha256(data).hexdigest())
    assert (facts.format, facts.width, facts.height) == (fmt, 20, 10)


def test_inspection_takes_the_hash_it_is_given():
    assert inspect_or_refuse(encoded("PNG"), "ab" * 32).sha256 == "ab" * 32  # read_source hashed it already


@pytest.mark.parametrize(
    "data, reason",
    [
        (encoded("PNG")[:-20], "truncated or corrupt"),
        (corrupted_png(), "truncated or corrupt"),
        (b"not an image at all", "not an image we can read"),
        (encoded("BMP"), "a BMP image; accepted formats are GIF, JPEG, PNG, WEBP"),
        (encoded("PNG", (200, 100)), "200x100 pixels, over the 10,000-pixel limit"),
        (png_bomb_bytes(), "decompression bomb"),
    ],
    ids=["truncated", "corrupt", "not-an-image", "other-format", "too-many-pixels", "bomb"],
)
def test_inspection_refuses_what_we_do_not_store(settings, data, reason):
    settings.IMAGINEER_UPLOAD_MAX_PIXELS = 10_000
    with pytest.raises(NotAnImportableImage, match=reason):
        inspect_or_refuse(data, hashlib.sha256(data).hexdigest())


def test_media_names_are_deterministic_and_safe(tmp_path):
    sha = "ab" * 32
    name = media_name(record(tmp_path / "Île de Fête ../../x.png"), sha, "PNG")
    assert name == media_name(record(tmp_path / "Île de Fête ../../x.png"), sha, "PNG")
    assert name.startswith("legacy/decks/card-deck-x/") and name.endswith(f"-{sha[:16]}.png")
    assert ".." not in name and " " not in name
    assert thumbnail_name(sha) == f"thumbnails/legacy/ab/{sha}.webp"
