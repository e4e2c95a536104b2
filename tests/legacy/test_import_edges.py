"""The importer's edge cases: touched files, vanished files, privacy, symlinks, locks, a killed run's leftovers."""

import os
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError

from albums.models import Album, Image, ThumbnailJob
from imagineer.core.models import JobStatus
from legacy import ingest, services
from legacy.models import ImportRun, LegacyAsset
from tests.assertions import files_under
from tests.legacy.helpers import png, run_import

pytestmark = pytest.mark.django_db


def test_a_touched_file_with_the_same_bytes_is_already_present(tree):
    outputs, packs = tree
    run_import(outputs, packs)
    single = outputs / "20250203_101010_other.png"
    os.utime(single, (1_800_000_000, 1_800_000_000))  # mtime changes, bytes do not
    text = run_import(outputs, packs)
    assert "images imported:       0" in text
    asset = LegacyAsset.objects.get(relative_path="20250203_101010_other.png")
    asset.full_clean()  # the outcome is a valid choice that fits its column
    assert asset.outcome == "already_present" and asset.mtime_ns == 1_800_000_000 * 10**9


def test_a_file_gone_since_it_was_collected_is_skipped_not_fatal(tree):
    outputs, packs = tree
    collection = services.collect_for(services.ImportOptions(outputs=outputs, packs=packs))
    (outputs / "20250203_101010_other.png").unlink()
    state = ingest.import_collection(collection, mode="copy", run=None)
    entry = next(e for e in state.manifest if e["source"] == "outputs/20250203_101010_other.png")
    assert entry["outcome"] == "skipped" and entry["reason"].startswith("unreadable")
    assert state.outcomes["imported"] == 4


def test_bytes_shared_with_a_private_pack_make_the_image_private(tree):
    outputs, packs = tree
    shared = (outputs / "20250203_101010_other.png").read_bytes()
    (packs / "Île de Fête" / "same.png").write_bytes(shared)
    run_import(outputs, packs, "--private-packs", "Île de Fête")
    image = Image.objects.get(original_filename="20250203_101010_other.png")
    assert image.is_public is False and image.albums.filter(is_public=False).exists()


def test_naming_a_pack_private_on_a_later_run_makes_it_private(tree):
    outputs, packs = tree
    run_import(outputs, packs)
    run_import(outputs, packs, "--private-packs", "Île de Fête")
    album = Album.objects.get(name="Reference Packs/Île de Fête")
    assert album.is_public is False and not album.images.filter(is_public=True).exists()


def test_symlink_mode_refuses_a_changed_source_instead_of_changing_the_image(tree):
    outputs, packs = tree
    run_import(outputs, packs, "--mode", "symlink")
    before = Image.objects.get(original_filename="20250203_101010_other.png")
    png(outputs / "20250203_101010_other.png", 77)
    run_import(outputs, packs, "--mode", "symlink")
    asset = LegacyAsset.objects.get(relative_path="20250203_101010_other.png")
    assert asset.image_id == before.pk  # still the first bytes' image
    reasons = {item["path"]: item["reason"] for item in ImportRun.objects.latest("id").skipped}
    assert "--mode copy" in reasons["outputs/20250203_101010_other.png"]


def test_a_second_run_queues_no_second_thumbnail_job(tree):
    outputs, packs = tree
    run_import(outputs, packs, "--thumbnails", "job")
    assert ThumbnailJob.objects.count() == 1
    run_import(outputs, packs, "--thumbnails", "job")
    assert ThumbnailJob.objects.count() == 1


def test_inline_thumbnails_refuse_undecodable_pixels_with_valid_crcs(tree, media_root):
    outputs, packs = tree

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    bad = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"this is not zlib data") + chunk(b"IEND", b"")
    (outputs / "20250301_000000_bad_pixels.png").write_bytes(bad)
    text = run_import(outputs, packs, "--thumbnails", "inline")
    assert "bad_pixels.png: corrupt image data" in text
    assert not Image.objects.filter(original_filename__contains="bad_pixels").exists()
    assert len(files_under(media_root)) == 2 * Image.objects.count()  # originals and thumbnails, no leftover


def test_one_import_at_a_time(tree):
    outputs, packs = tree
    with services.import_lock():
        with pytest.raises(CommandError, match="Another legacy import is running"):
            run_import(outputs, packs)
    assert not Image.objects.exists()


def test_a_killed_runs_leftovers_are_removed_and_the_run_marked_failed(tree, media_root):
    outputs, packs = tree
    dead = ImportRun.objects.create(status=JobStatus.RUNNING)
    leftover = default_storage.save("legacy/decks/card-deck-steampunk/left-0123456789abcdef.png", ContentFile(b"x"))
    thumb = default_storage.save("thumbnails/legacy/ab/" + "ab" * 32 + ".webp", ContentFile(b"x"))
    run_import(outputs, packs)
    dead.refresh_from_db()
    assert dead.status == JobStatus.FAILED and "ended before" in dead.error_message
    assert not default_storage.exists(leftover) and not default_storage.exists(thumb)
    assert sorted(files_under(media_root)) == sorted(Image.objects.values_list("file", flat=True))


def test_dry_run_leaves_no_manifest_by_default(tree, settings, tmp_path):
    outputs, packs = tree
    settings.DATA_DIR = tmp_path / "data"
    run_import(outputs, packs, "--dry-run")
    assert not Path(settings.DATA_DIR).exists()
