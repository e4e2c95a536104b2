"""What an acceptable image file is, and its thumbnail: the one place that decides.

Every way an image comes in (upload, generation, scraping, legacy import) asks inspect_image. What
a file *is* is decided by decoding it with Pillow, never by its name or the type a client claims.
Nothing here touches the database or storage (albums.services stores files and rows).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from PIL import ExifTags, UnidentifiedImageError
from PIL import Image as PILImage

from imagineer.core.errors import ImagineerError

# Decoded format → stored extension. Anything else Pillow can read (BMP, TIFF, PSD ...) is refused.
ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
# Pillow's names for files that are one of ours: a camera's multi-picture JPEG (MPO) is a JPEG whose
# first picture every browser shows.
FORMAT_ALIASES = {"MPO": "JPEG"}
HASH_CHUNK = 1024 * 1024
# How each accepted format's files begin: a file that starts like one but does not open is a broken
# image of that format (corrupt_image), not an unknown kind of file.
SIGNATURES = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "GIF": (b"GIF87a", b"GIF89a"),
}


def signature_format(head: bytes) -> str | None:
    """The accepted format whose signature `head` (the file's first bytes) starts with, if any."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for fmt, starts in SIGNATURES.items() if head.startswith(starts)), None)


def describe_byte_limit(limit: int) -> str:
    """'20 MB', '512 KB', '900 bytes': a limit as an operator set it, never rounded down to 0 MB."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit:,} bytes"


class UnsupportedImage(ImagineerError):
    code = "unsupported_image"


class ImageTooLarge(ImagineerError):
    code = "image_too_large"


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int
    sha256: str
    size: int
    thumbnail: bytes = b""  # WebP bytes, when asked for (saves decoding the file twice)

    @property
    def extension(self) -> str:
        return ACCEPTED_FORMATS[self.format]


def inspect_image(
    fileobj: IO[bytes],
    *,
    name: str = "file",
    with_thumbnail: bool = False,
    verify_png: bool = False,
    sha256: str | None = None,
) -> ImageFacts:
    """Decode the file and say what it is; raise a clear error for anything we refuse.

    Refuses: empty files, files over IMAGINEER_UPLOAD_MAX_BYTES, anything Pillow cannot decode
    (SVG, PDF, text ...), formats other than JPEG/PNG/WebP/GIF, truncated or corrupt data, and
    images over IMAGINEER_UPLOAD_MAX_PIXELS (decompression bombs), judged from the header before
    the pixels are decoded.

    The fast check, for bulk imports: `verify_png` checks a PNG with Pillow's verify() (structure
    and every chunk's CRC, so truncation and corruption are caught) at a fortieth of a full
    decode's cost; other formats are still decoded in full. A caller that already hashed the bytes
    passes `sha256` and they are not hashed again.
    """
    max_bytes = settings.IMAGINEER_UPLOAD_MAX_BYTES
    max_pixels = settings.IMAGINEER_UPLOAD_MAX_PIXELS
    size, digest = _measure(fileobj, name=name, max_bytes=max_bytes, hashed=sha256 is None)
    if size == 0:
        raise UnsupportedImage(f"{name} is empty (0 bytes).", code="empty_file")
    fileobj.seek(0)
    accepted = ", ".join(sorted(ACCEPTED_FORMATS))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(fileobj) as img:
                fmt = FORMAT_ALIASES.get(img.format, img.format)
                width, height = img.size
                if fmt not in ACCEPTED_FORMATS:
                    raise UnsupportedImage(
                        f"{name} is a {fmt} image; accepted formats are {accepted}.",
                        details={"format": fmt, "accepted": sorted(ACCEPTED_FORMATS)},
                    )
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"{name} is {width}x{height} pixels, over the {max_pixels:,}-pixel limit.",
                        details={"width": width, "height": height, "max_pixels": max_pixels},
                    )
                if verify_png and fmt == "PNG" and not with_thumbnail:
                    img.verify()
                else:
                    img.load()  # decode every pixel: truncated and corrupt files fail here
                thumbnail = thumbnail_of(img) if with_thumbnail else b""
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            f"{name} declares more pixels than allowed ({max_pixels:,}); refused as a decompression bomb.",
            details={"max_pixels": max_pixels},
        ) from exc
    except UnidentifiedImageError as exc:
        fileobj.seek(0)
        looks_like = signature_format(fileobj.read(12))
        if looks_like is not None:
            raise UnsupportedImage(
                f"{name} starts like a {looks_like} image but is truncated or corrupt and cannot be decoded.",
                code="corrupt_image",
            ) from exc
        raise UnsupportedImage(
            f"{name} is not an image we can read; accepted formats are {accepted}.",
            details={"accepted": sorted(ACCEPTED_FORMATS)},
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnsupportedImage(f"{name} is truncated or corrupt and cannot be decoded.", code="corrupt_image") from exc
    finally:
        fileobj.seek(0)
    return ImageFacts(format=fmt, width=width, height=height, sha256=sha256 or digest, size=size, thumbnail=thumbnail)


def _measure(fileobj: IO[bytes], *, name: str, max_bytes: int, hashed: bool) -> tuple[int, str]:
    """(size, SHA-256 hex or "") of the file, refusing it as soon as it passes max_bytes."""
    fileobj.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fileobj.read(HASH_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(
                f"{name} is larger than the {describe_byte_limit(max_bytes)} limit.",
                details={"max_bytes": max_bytes},
            )
        if hashed:
            digest.update(chunk)
    return size, digest.hexdigest() if hashed else ""


def facts_for_generated(png: bytes, image: PILImage.Image) -> ImageFacts:
    """Facts of a PNG we encoded ourselves from `image`: no second decode needed."""
    return ImageFacts(
        format="PNG",
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(png).hexdigest(),
        size=len(png),
        thumbnail=thumbnail_of(image),
    )


def render_thumbnail(fileobj: IO[bytes], size: int | None = None) -> bytes:
    """A WebP thumbnail whose longest side is `size` (aspect kept, EXIF orientation applied)."""
    fileobj.seek(0)
    with PILImage.open(fileobj) as img:
        return thumbnail_of(img, size)


# EXIF orientation → the turn that makes the picture upright (as ImageOps.exif_transpose reads it).
_UPRIGHT = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}


def thumbnail_of(img: PILImage.Image, size: int | None = None) -> bytes:
    """A WebP thumbnail of an open image (see render_thumbnail)."""
    size = size or settings.IMAGINEER_THUMBNAIL_SIZE
    # Shrink, then turn upright: turning first copies the full-size picture (a second 190 MB for a
    # 64 MP photo). The box is square, so the scale is the same either way. The caller's image is
    # not changed: resize and transpose return new images.
    turn = _UPRIGHT.get(img.getexif().get(ExifTags.Base.Orientation))
    width, height = img.size
    scale = size / max(width, height)
    if scale < 1:
        img = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), reducing_gap=2.0)
    if turn is not None:
        img = img.transpose(turn)
    if img.mode not in ("RGB", "RGBA"):
        has_alpha = "A" in img.mode or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    img.save(out, "WEBP", quality=85)
    return out.getvalue()
