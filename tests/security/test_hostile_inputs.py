"""Hostile files through the upload API and the legacy importer (corpus: tests/security/hostile.py).

Uploads: each file is sent as a raw multipart body (the name exactly as a hostile client would
write it, which Django's test client would clean first) with an admin token. A refusal is a 400 in
the envelope whose message names the problem, and leaves no row, no media file and no spooled
temporary file; an accepted file is stored under a generated name with the extension of its
decoded format and served back with that format's content type, `nosniff` and a sandboxing CSP.

What the product does with polyglots, stated: originals are stored byte for byte (their SHA-256 is
the ETag and the duplicate key, docs/API.md), so a PNG carrying a ZIP or a page keeps its tail.
It is only ever served as the image it decodes as, never as HTML, and opened on its own it is a
sandboxed document (Content-Security-Policy: sandbox) in which no script runs.

Importer: the same files in a generated tree, plus names and links a filesystem allows (backslash
`..` components, markup, a newline, 240 characters, links to a file and a folder outside the
tree, a FIFO): refused files are skipped with a reason, links out of the roots are not followed,
accepted ones land under deterministic, slugged media names, and nothing is written outside media.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from PIL import Image as PILImage

from albums.image_files import ACCEPTED_FORMATS, CONTENT_TYPES
from albums.models import Image
from legacy.collectors import IMAGE_SUFFIXES, LINK_OUTSIDE_ROOTS, NOT_A_REGULAR_FILE, NOT_AN_IMAGE
from legacy.models import ImportRun, LegacyAsset
from tests.assertions import assert_envelope, files_under
from tests.legacy.helpers import run_import
from tests.security.hostile import (
    ACCEPTED,
    HOSTILE_MAX_BYTES,
    IMPORTER_REASONS,
    TRAVERSAL_NAMES,
    build_corpus,
    png,
)

pytestmark = pytest.mark.django_db

CORPUS = {item.key: item for item in build_corpus()}
STORED_NAME = re.compile(r"^images/\d{4}/\d{2}/[0-9a-f]{32}\.(png|jpg|webp|gif)$")
LEGACY_NAME = re.compile(r"^legacy/[a-z0-9-]+/[a-z0-9_-]+/[a-z0-9_-]+-[0-9a-f]{16}\.(png|jpg|webp|gif)$")
LEGACY_THUMBNAIL = re.compile(r"^thumbnails/legacy/[0-9a-f]{2}/[0-9a-f]{64}\.webp$")


def tree_outside(root: Path, *inside: Path) -> dict[str, bytes]:
    """Every file under `root` but not under `inside`, with its bytes (links read as their target)."""
    skip = [path.resolve() for path in inside]
    found = {}
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file() or any(path.resolve().is_relative_to(s) for s in skip):
            continue
        found[str(path.relative_to(root))] = path.read_bytes()
    return found


# --- Upload API --------------------------------------------------------------------------------


@pytest.fixture
def upload_limits(settings, tmp_path) -> Path:
    """The corpus's size limit, and uploads over 16 KB spooled to a temp folder this test can watch."""
    settings.IMAGINEER_UPLOAD_MAX_BYTES = HOSTILE_MAX_BYTES
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024
    spool = tmp_path / "upload-spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return spool


def post_raw_upload(client, name: str, data: bytes, content_type: str = "image/png"):
    """POST /api/images/ with the file part's name written as given (only `"` escaped, as browsers do)."""
    boundary = uuid.uuid4().hex
    quoted = name.replace('"', "%22").encode("utf-8", "surrogateescape")
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + quoted
        + b'"\r\n'
        + f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post("/api/images/", data=body, content_type=f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize("key", [key for key, item in CORPUS.items() if item.expect != ACCEPTED])
def test_refused_upload_names_the_problem_and_leaves_nothing(
    admin_client_api, media_root, upload_limits, tmp_path, key
):
    item = CORPUS[key]
    around = tree_outside(tmp_path, media_root)
    error = assert_envelope(post_raw_upload(admin_client_api, item.name, item.data), 400, item.expect)
    for word in item.words:
        assert word in error["message"], error
    assert str(tmp_path) not in error["message"]
    assert not Image.objects.exists()
    assert files_under(media_root) == []
    assert list(upload_limits.iterdir()) == []  # a spooled upload is removed with its request
    assert tree_outside(tmp_path, media_root) == around


@pytest.mark.parametrize("key", [key for key, item in CORPUS.items() if item.expect == ACCEPTED])
def test_accepted_upload_is_stored_and_served_as_what_it_decodes_as(
    admin_client_api, media_root, upload_limits, tmp_path, key
):
    item = CORPUS[key]
    around = tree_outside(tmp_path, media_root)
    response = post_raw_upload(admin_client_api, item.name, item.data)
    assert response.status_code == 201, response.content
    assert response.json()["format"] == item.format
    image = Image.objects.get()
    assert STORED_NAME.match(image.file.name) and image.file.name.endswith("." + ACCEPTED_FORMATS[item.format])
    assert sorted(files_under(media_root)) == sorted([image.file.name, image.thumbnail.name])

    served = admin_client_api.get(f"/api/images/{image.pk}/file")
    assert served["Content-Type"] == CONTENT_TYPES[item.format]
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"] and "default-src 'none'" in served["Content-Security-Policy"]
    assert served["Content-Disposition"] == f'inline; filename="image-{image.pk}.{ACCEPTED_FORMATS[item.format]}"'
    assert b"".join(served.streaming_content) == item.data  # the original, as documented

    thumbnail = admin_client_api.get(f"/api/images/{image.pk}/thumbnail")
    assert thumbnail["Content-Type"] == "image/webp"
    assert PILImage.open(image.thumbnail.open("rb")).format == "WEBP"  # re-encoded: no tail, no metadata
    assert list(upload_limits.iterdir()) == []
    assert tree_outside(tmp_path, media_root) == around


@pytest.mark.parametrize("name", TRAVERSAL_NAMES, ids=range(len(TRAVERSAL_NAMES)))
def test_client_file_names_never_choose_where_bytes_land(admin_client_api, media_root, tmp_path, name):
    around = tree_outside(tmp_path, media_root)
    response = post_raw_upload(admin_client_api, name, png(hash(name) % 10_000 + 100))
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert STORED_NAME.match(image.file.name)
    kept = image.original_filename
    assert len(kept) <= 255 and not any(part in kept for part in ("/", "\\", "\x00", ".."))
    text = response.content.decode()
    assert kept not in text and str(media_root) not in text  # the client's name is the admin's to see, in admin
    assert sorted(files_under(media_root)) == sorted([image.file.name, image.thumbnail.name])
    assert tree_outside(tmp_path, media_root) == around


def test_a_name_too_long_for_a_part_header_is_a_clear_400(admin_client_api, media_root):
    error = assert_envelope(post_raw_upload(admin_client_api, "a" * 1100 + ".png", png(7000)), 400, "malformed_request")
    assert "header" in error["message"]
    assert files_under(media_root) == []


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(admin_client_api, media_root, upload_limits):
    error = assert_envelope(
        post_raw_upload(admin_client_api, "big.png", os.urandom(1536 * 1024)), 400, "image_too_large"
    )
    assert "256 KB" in error["message"]
    assert files_under(media_root) == [] and list(upload_limits.iterdir()) == []


# --- Legacy importer ---------------------------------------------------------------------------


HOSTILE_PACK = "Hostile"
ODD_NAMES = (  # a valid image under each: names a filesystem allows
    "evil\\..\\..\\x.png",
    "<img src=x onerror=alert(1)>.png",
    "line\nbreak.png",
    "l" * 240 + ".png",
)
HIDDEN_NAMES = ("..\\..\\evil.png", "...png")  # start with a dot: hidden files, skipped like .DS_Store


@pytest.fixture
def hostile_tree(tmp_path):
    """outputs/ (empty) and packs/Hostile/ holding the corpus, odd names, links out and a FIFO."""
    outputs, packs = tmp_path / "outputs", tmp_path / "image packs"
    outputs.mkdir()
    pack = packs / HOSTILE_PACK
    pack.mkdir(parents=True)
    expected: dict[str, tuple[str, str]] = {}  # file name → (ACCEPTED and format, or "skipped" and reason words)
    for item in CORPUS.values():
        file_name = item.key + Path(item.name).suffix
        (pack / file_name).write_bytes(item.data)
        if Path(file_name).suffix not in IMAGE_SUFFIXES:
            expected[file_name] = ("skipped", NOT_AN_IMAGE)
        elif item.expect == ACCEPTED:
            expected[file_name] = (ACCEPTED, item.format)
        else:
            expected[file_name] = ("skipped", item.expect)
    for number, name in enumerate(ODD_NAMES):
        (pack / name).write_bytes(png(5000 + number))
        expected[name] = (ACCEPTED, "PNG")
    for number, name in enumerate(HIDDEN_NAMES):
        (pack / name).write_bytes(png(5500 + number))
        expected[name] = ("skipped", NOT_AN_IMAGE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the importer\n")
    (outside / "elsewhere.png").write_bytes(png(6000))
    # Links out of the roots are not followed (docs/LEGACY.md), whatever they point at: each is
    # reported under its own name, and nothing behind it is read.
    (pack / "linked-secret.png").symlink_to(outside / "secret.txt")
    expected["linked-secret.png"] = ("skipped", LINK_OUTSIDE_ROOTS)
    (pack / "linked-image.png").symlink_to(outside / "elsewhere.png")
    expected["linked-image.png"] = ("skipped", LINK_OUTSIDE_ROOTS)
    (pack / "linked-folder").symlink_to(outside, target_is_directory=True)
    expected["linked-folder"] = ("skipped", LINK_OUTSIDE_ROOTS)
    os.mkfifo(pack / "pipe.png")  # a reader that opens it blocks forever
    expected["pipe.png"] = ("skipped", NOT_A_REGULAR_FILE)
    return outputs, packs, outside, expected


def test_importer_skips_hostile_files_with_reasons_and_writes_only_media(hostile_tree, media_root, tmp_path, settings):
    outputs, packs, outside, expected = hostile_tree
    settings.IMAGINEER_UPLOAD_MAX_BYTES = HOSTILE_MAX_BYTES
    around = tree_outside(tmp_path, media_root, settings.DATA_DIR)

    run_import(outputs, packs, "--thumbnails", "inline")

    run = ImportRun.objects.latest("id")
    skipped = {item["path"].removeprefix(f"packs/{HOSTILE_PACK}/"): item["reason"] for item in run.skipped}
    assets = {a.relative_path.removeprefix(f"{HOSTILE_PACK}/"): a for a in LegacyAsset.objects.select_related("image")}
    for name, (outcome, detail) in expected.items():
        if outcome == ACCEPTED:
            assert name not in skipped, (name, skipped.get(name))
            assert assets[name].image.format == detail, name
        else:
            words = IMPORTER_REASONS.get(detail, (detail,))
            assert any(word in skipped[name] for word in words), (name, skipped[name])
    # Nothing behind the folder link was walked, and no reason names where a link points.
    assert not any(name.startswith("linked-folder/") for name in [*skipped, *assets])
    assert not any(str(outside) in f"{item['path']} {item['reason']}" for item in run.skipped)

    images = list(Image.objects.all())
    assert len(images) == sum(1 for outcome, _ in expected.values() if outcome == ACCEPTED)
    stored = files_under(media_root)
    assert sorted(stored) == sorted([i.file.name for i in images] + [i.thumbnail.name for i in images])
    assert all(LEGACY_NAME.match(name) or LEGACY_THUMBNAIL.match(name) for name in stored), stored
    assert tree_outside(tmp_path, media_root, settings.DATA_DIR) == around  # sources and outside untouched
    assert sorted(p.name for p in outside.iterdir()) == ["elsewhere.png", "secret.txt"]
