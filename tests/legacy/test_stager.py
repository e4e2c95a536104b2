"""The stager's pieces that need no database: what a file is, and where it lands in media."""

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image as PILImage

from legacy.records import ImageMetadata, LegacyRecord
from legacy.services import NotAnImportableImage, media_name, probe_image, thumbnail_name
from tests.factories import png_bomb_bytes


def record(path: Path, category="decks", slug="card-deck-x") -> LegacyRecord:
    return LegacyRecord(
        source_path=path, root="outputs", relative_path=path.name, category=category, album_key="k", album_name="n",
        album_slug=slug, album_type="deck", album_private=False, album_description="", timestamp=datetime.now(UTC),
        timestamp_source="mtime", size=1, mtime_ns=1, metadata=ImageMetadata(),
    )  # fmt: skip


def write(path: Path, fmt: str) -> Path:
    out = io.BytesIO()
    PILImage.new("RGB", (20, 10), (1, 2, 3)).save(out, fmt)
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_probe_reads_format_and_size(tmp_path, fmt):
    assert probe_image(write(tmp_path / "a.img", fmt)) == (fmt, 20, 10)


@pytest.mark.parametrize(
    "content, reason",
    [
        (lambda p: write(p, "PNG").write_bytes(write(p, "PNG").read_bytes()[:-20]), "corrupt or truncated"),
        (lambda p: p.write_bytes(b"not an image at all"), "not an image Pillow can read"),
        (lambda p: write(p, "BMP"), "a BMP image"),
        (lambda p: p.write_bytes(png_bomb_bytes()), "pixel"),
    ],
)
def test_probe_refuses_what_we_do_not_store(tmp_path, content, reason):
    path = tmp_path / "x.png"
    content(path)
    with pytest.raises(NotAnImportableImage, match=reason):
        probe_image(path)


def test_media_names_are_deterministic_and_safe(tmp_path):
    sha = "ab" * 32
    name = media_name(record(tmp_path / "Île de Fête ../../x.png"), sha, "PNG")
    assert name == media_name(record(tmp_path / "Île de Fête ../../x.png"), sha, "PNG")
    assert name.startswith("legacy/decks/card-deck-x/") and name.endswith(f"-{sha[:16]}.png")
    assert ".." not in name and " " not in name
    assert thumbnail_name(sha) == f"thumbnails/legacy/ab/{sha}.webp"
