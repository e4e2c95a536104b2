"""The importer end to end: duplicates, idempotency, dry run, manifest, album links, exit status."""

import io
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from albums.models import Album, Image, ImageSource
from labeling.models import LabelType
from legacy import collectors, stager
from legacy.manifest import read_manifest
from legacy.models import ImportRun, LegacyAlbum, LegacyAsset
from tests.assertions import files_under
from tests.legacy.helpers import png, run_import, state

pytestmark = pytest.mark.django_db


def test_import_makes_albums_images_and_links(tree, media_root):
    outputs, packs = tree
    text = run_import(outputs, packs)
    assert "images imported:       5" in text and "duplicates (linked):   1" in text
    singles = Image.objects.get(prompt="a lighthouse")
    assert singles.source == ImageSource.LEGACY and singles.seed == 7 and singles.steps == 20
    assert singles.loras == [{"name": "ink", "weight": 0.6}]
    assert singles.created_at.isoformat() == "2025-01-15T12:34:56+00:00"
    assert {a.name for a in singles.albums.all()} == {"Legacy Singles/2025-01"}
    names = set(Album.objects.values_list("name", flat=True))
    assert {
        "Legacy Singles/2025-01",
        "Legacy Singles/2025-02",
        "Decks/card_deck_steampunk",
        "Zodiac/zodiac_signs",
        "Reference Packs/Île de Fête",
    } <= names
    # The duplicate is one image, linked to both albums.
    ace = Image.objects.get(original_filename="20251013_213530_Ace.png")
    assert {a.name for a in ace.albums.all()} == {"Decks/card_deck_steampunk", "Zodiac/zodiac_signs"}
    # The pack caption became a caption label; files are under legacy/<category>/<slug>/.
    ref = Image.objects.get(original_filename="ref 1.png")
    assert list(ref.labels.values_list("label_type", "text")) == [(LabelType.CAPTION, "a harbour at dusk")]
    assert all(name.startswith("legacy/") for name in Image.objects.values_list("file", flat=True))
    assert Image.objects.count() == 5 and len(files_under(media_root)) == 5


def test_corrupt_and_non_image_files_are_skipped_with_reasons(tree):
    outputs, packs = tree
    run_import(outputs, packs)
    run = ImportRun.objects.get()
    reasons = {item["path"]: item["reason"] for item in run.skipped}
    assert "truncated or corrupt" in reasons["outputs/card_deck_steampunk/broken.png"]
    assert "outputs/notes.txt" in reasons
    assert run.status == "succeeded"
    assert not Image.objects.filter(original_filename="broken.png").exists()


def test_second_run_imports_nothing_and_reads_no_known_file(tree, monkeypatch, media_root):
    outputs, packs = tree
    run_import(outputs, packs)
    before, files_before = state(), files_under(media_root)
    hashed, sidecars = [], []
    real_read, real_sidecar = stager.read_source, collectors.read_sidecar
    monkeypatch.setattr(stager, "read_source", lambda path: hashed.append(path) or real_read(path))
    monkeypatch.setattr(collectors, "read_sidecar", lambda path: sidecars.append(path) or real_sidecar(path))
    text = run_import(outputs, packs)
    assert "images imported:       0" in text and "albums created/reused: 0/" in text
    assert state() == before and files_under(media_root) == files_before
    assert hashed == []  # size + mtime + path known: not one file read again
    assert sidecars == []  # nor its metadata: it is placed in its album by the stored timestamp


def test_a_changed_file_is_hashed_again(tree, monkeypatch):
    outputs, packs = tree
    run_import(outputs, packs)
    png(outputs / "20250203_101010_other.png", 99)  # new bytes at a known path
    run_import(outputs, packs)
    assert Image.objects.filter(original_filename="20250203_101010_other.png").count() == 2
    assert (
        LegacyAsset.objects.get(relative_path="20250203_101010_other.png").image.sha256
        == Image.objects.latest("id").sha256
    )


def test_images_already_in_the_database_are_not_stored_again(tree, media_root):
    from albums.services import store_image

    outputs, packs = tree
    uploaded, _ = store_image(
        io.BytesIO((outputs / "20250203_101010_other.png").read_bytes()), original_filename="up.png"
    )
    run_import(outputs, packs)
    assert Image.objects.filter(sha256=uploaded.sha256).count() == 1
    uploaded.refresh_from_db()
    assert uploaded.source == "uploaded" and {a.name for a in uploaded.albums.all()} == {"Legacy Singles/2025-02"}
    assert LegacyAsset.objects.get(image=uploaded).outcome == "duplicate"


def test_dry_run_changes_nothing(tree, media_root, tmp_path):
    outputs, packs = tree
    text = run_import(outputs, packs, "--dry-run")
    assert "Dry run" in text and "would_import: 5" in text and "duplicate: 1" in text
    assert "Decks/card_deck_steampunk: 2 image(s)" in text
    assert not Image.objects.exists() and not Album.objects.exists() and not ImportRun.objects.exists()
    assert files_under(media_root) == []


def test_manifest_lists_every_file_with_its_outcome(tree, tmp_path):
    outputs, packs = tree
    manifest = tmp_path / "m.yaml"
    run_import(outputs, packs, "--manifest", str(manifest))
    document = read_manifest(manifest)
    outcomes = {entry["source"]: entry["outcome"] for entry in document["files"]}
    assert outcomes["outputs/zodiac_signs/aries_copy.png"] == "duplicate"
    assert outcomes["outputs/card_deck_steampunk/broken.png"] == "skipped"
    assert outcomes["packs/Île de Fête/ref 1.png"] == "imported"
    ids = [entry["image_id"] for entry in document["files"] if entry["outcome"] == "imported"]
    assert sorted(ids) == sorted(Image.objects.values_list("pk", flat=True))
    run_import(outputs, packs, "--manifest", str(manifest))  # rewritten by the next run
    assert {e["outcome"] for e in read_manifest(manifest)["files"]} >= {"already_present", "skipped"}


def test_private_pack_becomes_a_private_album_of_private_images(tree):
    outputs, packs = tree
    run_import(outputs, packs, "--private-packs", "Île de Fête")
    album = Album.objects.get(name="Reference Packs/Île de Fête")
    assert album.is_public is False and not album.images.filter(is_public=True).exists()


def test_albums_are_found_again_by_their_key_even_when_renamed(tree):
    outputs, packs = tree
    run_import(outputs, packs)
    album = Album.objects.get(name="Decks/card_deck_steampunk")
    album.name = "My steampunk deck"
    album.save()
    png(outputs / "card_deck_steampunk" / "20251013_213531_King.png", 42)
    run_import(outputs, packs)
    assert Album.objects.filter(name__startswith="Decks/").count() == 0
    assert album.images.filter(original_filename="20251013_213531_King.png").exists()
    assert LegacyAlbum.objects.get(album=album).key


def test_limit_imports_at_most_n(tree):
    outputs, packs = tree
    run_import(outputs, packs, "--limit", "2")
    assert Image.objects.count() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Give --outputs"),
        (["--outputs", "/nonexistent/outputs"], "is not a folder"),
        (["--packs", "/nonexistent/packs"], "is not a folder"),
        (["--outputs", ".", "--limit", "0"], "at least 1"),
    ],
)
def test_the_command_refuses_what_it_cannot_do(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_legacy_media", *args)
    assert not ImportRun.objects.exists()


def test_unwritable_media_stops_before_any_work(tree, settings, tmp_path):
    outputs, packs = tree
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings.MEDIA_ROOT = blocker / "media"  # cannot be created: a file is in the way
    with pytest.raises(CommandError, match="not writable"):
        run_import(outputs, packs)
    assert not Image.objects.exists() and not ImportRun.objects.exists()


def test_symlink_mode_links_media_to_the_source(tree, media_root):
    outputs, packs = tree
    run_import(outputs, packs, "--mode", "symlink")
    image = Image.objects.get(prompt="a lighthouse")
    stored = Path(default_storage.path(image.file.name))
    assert stored.is_symlink() and stored.resolve() == (outputs / "20250115_123456_sample.png").resolve()


def test_import_leaves_the_label_tally_folded(tree, media_root):
    """The captions an import writes are folded into the analytics tally by the import itself."""
    from labeling.models import LabelTextDelta, LabelTextTally

    outputs, packs = tree
    run_import(outputs, packs)
    assert not LabelTextDelta.objects.exists()
    assert LabelTextTally.objects.filter(scope=LabelType.CAPTION, total__gt=0).exists()
