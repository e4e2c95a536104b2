"""A corpus of hostile files, built in code (no binary fixture in the repo), with what each must cause.

Every entry says how the product must answer it: `expect` is "accepted" (stored, with `format` as
decoded) or the error code of a refusal (unsupported_image, corrupt_image, empty_file,
image_too_large). The same bytes go through the upload API and the legacy importer; the importer
skips what the upload refuses, with a reason (IMPORTER_REASONS).

Sizes are small on purpose (the suite's time budget): "oversized" is judged against
HOSTILE_MAX_BYTES, which the tests set as IMAGINEER_UPLOAD_MAX_BYTES; bombs declare their size in
a header and are refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from tests.factories import png_bomb_bytes

ACCEPTED = "accepted"
HOSTILE_MAX_BYTES = 256 * 1024

# What the importer says when it skips a file the upload refuses with this code (substrings).
IMPORTER_REASONS = {
    "unsupported_image": ("not an image we can read", "image; accepted formats are"),
    "corrupt_image": ("truncated or corrupt",),
    "empty_file": ("empty file",),
    "image_too_large": ("pixel limit", "decompression bomb", "KB limit"),
}

SCRIPT = b"<script>alert(document.domain)</script>"
HTML_PAGE = b"<!doctype html><html><body>" + SCRIPT + b"</body></html>"
SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" onload="alert(1)">'
    b"<script>alert(document.cookie)</script><rect width='64' height='64'/></svg>"
)


@dataclass(frozen=True)
class HostileFile:
    key: str  # short id, also the stem of the file on disk for the importer
    name: str  # the name a client sends
    data: bytes
    expect: str  # ACCEPTED or the refusal's error code
    format: str = ""  # the decoded format, when accepted
    words: tuple[str, ...] = ()  # what the refusal's message must mention


def _seeded_rgb(seed: int, size: tuple[int, int]) -> PILImage.Image:
    # Noise: a different seed gives different bytes (no accidental duplicate), and it does not compress.
    return PILImage.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def encode(image: PILImage.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png(seed: int, size: tuple[int, int] = (32, 32), **options) -> bytes:
    return encode(_seeded_rgb(seed, size), "PNG", **options)


def jpeg(seed: int, size: tuple[int, int] = (32, 32), **options) -> bytes:
    return encode(_seeded_rgb(seed, size), "JPEG", quality=90, **options)


def mpo(seed: int) -> bytes:
    first, second = _seeded_rgb(seed, (32, 32)), _seeded_rgb(seed + 1, (32, 32))
    return encode(first, "MPO", save_all=True, append_images=[second])


def gif(seed: int, size: tuple[int, int] = (32, 32)) -> bytes:
    return encode(_seeded_rgb(seed, size).convert("P"), "GIF")


def zip_archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_chunk_before_idat(base: bytes, kind: bytes, data: bytes) -> bytes:
    """`base` with one extra chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return base[:33] + _png_chunk(kind, data) + base[33:]


def jpeg_with_exif(seed: int, **tags) -> bytes:
    exif = PILImage.Exif()
    for tag, value in tags.items():
        exif[int(tag.removeprefix("tag_"))] = value
    return jpeg(seed, exif=exif.tobytes())


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen is width x height: one 1x1 frame, nowhere near that many pixels."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b";"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 header is rewritten to declare width x height."""
    data = bytearray(jpeg(901, (16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif_ifd_loop(seed: int) -> bytes:
    """A JPEG whose EXIF IFD0 links to itself as the next IFD (a reader that follows links loops)."""
    little_endian_tiff = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 8)
    return jpeg(seed, exif=b"Exif\x00\x00" + little_endian_tiff + ifd)


def build_corpus() -> list[HostileFile]:
    """Every hostile input, fresh bytes each call (distinct from other tests' images)."""
    html_tail_png = png(1) + HTML_PAGE
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>' + b"<rdf:li>padding</rdf:li>" * 4000 + b"</rdf:RDF>"
    ztxt_bomb = zlib.compress(b"A" * (2 * 1024 * 1024), 9)  # 2 MB of text once inflated, ~2 KB here
    oversized = png(30, (320, 320))  # noise: ~300 KB, over HOSTILE_MAX_BYTES
    assert len(oversized) > HOSTILE_MAX_BYTES
    return [
        # Polyglots: valid images carrying another file. Stored as sent, served as the image they are.
        HostileFile("png_zip", "archive.png", png(2) + zip_archive({"evil.html": HTML_PAGE}), ACCEPTED, "PNG"),
        HostileFile("png_html", "page.png", html_tail_png, ACCEPTED, "PNG"),
        HostileFile(
            "gifar",
            "applet.gif",
            gif(3)
            + zip_archive({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "Evil.class": b"\xca\xfe\xba\xbe"}),
            ACCEPTED,
            "GIF",
        ),
        HostileFile("jpeg_script_comment", "comment.jpg", jpeg(4, comment=SCRIPT), ACCEPTED, "JPEG"),
        # Files that start like markup: never an image, whatever the name says.
        HostileFile("html_as_png", "page.png", HTML_PAGE, "unsupported_image", words=("accepted formats",)),
        HostileFile("svg_script", "vector.svg", SVG_WITH_SCRIPT, "unsupported_image", words=("accepted formats",)),
        HostileFile("svg_as_png", "vector.png", SVG_WITH_SCRIPT, "unsupported_image", words=("accepted formats",)),
        HostileFile("text_as_png", "notes.png", b"just some text\n" * 20, "unsupported_image", words=("JPEG",)),
        HostileFile("pdf_as_jpg", "doc.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n", "unsupported_image"),
        HostileFile("bmp", "bitmap.png", encode(_seeded_rgb(5, (16, 16)), "BMP"), "unsupported_image", words=("BMP",)),
        HostileFile("tiff", "scan.jpg", encode(_seeded_rgb(6, (16, 16)), "TIFF"), "unsupported_image", words=("TIFF",)),
        # Names that lie about a real image: the bytes decide the format and the stored extension.
        HostileFile("jpeg_as_png", "photo.png", jpeg(7), ACCEPTED, "JPEG"),
        HostileFile("png_as_gif", "anim.gif", png(8), ACCEPTED, "PNG"),
        HostileFile("webp_as_jpg", "photo.jpg", encode(_seeded_rgb(9, (16, 16)), "WEBP"), ACCEPTED, "WEBP"),
        # A camera's multi-picture JPEG, which Pillow calls MPO: a JPEG to every browser, and to us.
        HostileFile("mpo_jpeg", "camera.jpg", mpo(18), ACCEPTED, "JPEG"),
        # Broken files.
        HostileFile("empty", "empty.png", b"", "empty_file", words=("empty",)),
        HostileFile("truncated_png", "cut.png", png(10, (64, 64))[:1500], "corrupt_image", words=("truncated",)),
        HostileFile("truncated_jpeg", "cut.jpg", jpeg(11, (64, 64))[:1200], "corrupt_image", words=("truncated",)),
        HostileFile("header_only_png", "header.png", png(12)[:33], "corrupt_image", words=("starts like a PNG",)),
        HostileFile(
            "ztxt_bomb",
            "text-bomb.png",
            png_with_chunk_before_idat(png(13), b"zTXt", b"Comment\x00\x00" + ztxt_bomb),
            "corrupt_image",
        ),
        # Decompression bombs: a few bytes declaring billions of pixels.
        HostileFile("png_bomb", "bomb.png", png_bomb_bytes(), "image_too_large", words=("pixel",)),
        HostileFile("gif_bomb", "bomb.gif", gif_declaring(65535, 65535), "image_too_large", words=("pixel",)),
        HostileFile("jpeg_bomb", "bomb.jpg", jpeg_declaring(65000, 65000), "image_too_large", words=("pixel",)),
        HostileFile("oversized", "big.png", oversized, "image_too_large", words=("256 KB limit",)),
        # Metadata that is large or malformed: the image is still just an image.
        HostileFile(
            "huge_exif", "exif.jpg", jpeg_with_exif(14, tag_270="d" * 61_000, tag_305="x" * 200), ACCEPTED, "JPEG"
        ),
        HostileFile("huge_xmp", "xmp.png", png(15, pnginfo=_itxt("XML:com.adobe.xmp", xmp)), ACCEPTED, "PNG"),
        HostileFile("orientation_out_of_range", "turn.jpg", jpeg_with_exif(16, tag_274=65535), ACCEPTED, "JPEG"),
        HostileFile("orientation_ifd_loop", "loop.jpg", exif_ifd_loop(17), ACCEPTED, "JPEG"),
    ]


def _itxt(key: str, value: bytes) -> PngInfo:
    info = PngInfo()
    info.add_itxt(key, value.decode("ascii"))
    return info


# Client-sent names that try to leave the upload folder or smuggle something: each uploads a valid
# image, which must be stored under a generated name with the client's name cleaned.
TRAVERSAL_NAMES = (
    "../../x.png",
    "..\\..\\x.png",
    "/etc/cron.d/x.png",
    "C:\\Windows\\System32\\x.png",
    "....//....//x.png",
    "%2e%2e%2fx.png",
    "x.png\x00.html",
    "<img src=x onerror=alert(1)>.png",
    "a" * 300 + ".png",
)
