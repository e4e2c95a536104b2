"""The import stays inside its roots: symlinks out of them are skipped and reported, unless the operator
passes --follow-links-outside; links inside keep working, broken ones are reported (the walk itself:
tests/legacy/test_collectors.py)."""

import json

import pytest

from albums.models import Image
from imagineer.core import jobs
from imagineer.core.models import JobStatus
from legacy import services
from legacy.collectors import BROKEN_LINK, LINK_OUTSIDE_ROOTS
from legacy.manifest import read_manifest
from legacy.models import ImportRun
from tests.legacy.helpers import png, run_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def outside(tmp_path):
    """A folder beside the roots, with an image nobody asked to import."""
    folder = tmp_path / "somebody-elses-photos"
    png(folder / "holiday.png", 101)
    png(folder / "nested" / "beach.png", 102)
    return folder


def skipped_reasons(run: ImportRun) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in run.skipped}


def test_file_link_outside_is_skipped_and_reported(tree, outside, tmp_path):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    manifest = tmp_path / "m.yaml"
    text = run_import(outputs, packs, "--manifest", str(manifest))

    assert not Image.objects.filter(original_filename="holiday.png").exists()
    run = ImportRun.objects.get()
    assert skipped_reasons(run)["outputs/zodiac_signs/holiday.png"] == LINK_OUTSIDE_ROOTS
    assert run.links_outside_count == 1 and run.follow_links_outside is False
    document = read_manifest(manifest)
    assert document["summary"]["links_outside"] == 1 and document["summary"]["follow_links_outside"] is False
    entries = {e["source"]: e for e in document["files"]}
    assert entries["outputs/zodiac_signs/holiday.png"] == {
        "source": "outputs/zodiac_signs/holiday.png",
        "outcome": "skipped",
        "reason": LINK_OUTSIDE_ROOTS,
    }
    assert f"outputs/zodiac_signs/holiday.png: {LINK_OUTSIDE_ROOTS}" in text
    assert "links outside roots:   1 not followed" in text and "--follow-links-outside" in text
    # The link's own path is named; where it points, nowhere.
    assert str(outside) not in text and "somebody-elses-photos" not in manifest.read_text()


def test_folder_link_outside_is_skipped_and_nothing_under_it_imported(tree, outside):
    outputs, packs = tree
    (outputs / "zodiac_borrowed").symlink_to(outside, target_is_directory=True)
    (packs / "Borrowed Pack").symlink_to(outside, target_is_directory=True)
    before = run_import(outputs, packs, "--dry-run")
    assert "links outside roots: 2 not followed" in before

    run_import(outputs, packs)

    assert not Image.objects.filter(original_filename__in=["holiday.png", "beach.png"]).exists()
    run = ImportRun.objects.get()
    reasons = skipped_reasons(run)
    assert reasons["outputs/zodiac_borrowed"] == reasons["packs/Borrowed Pack"] == LINK_OUTSIDE_ROOTS
    assert not any(path.startswith(("outputs/zodiac_borrowed/", "packs/Borrowed Pack/")) for path in reasons)
    assert run.links_outside_count == 2 and run.imported_count == 5  # the tree's own images all came in


def test_link_inside_the_roots_is_imported_as_before(tree):
    outputs, packs = tree
    target = outputs / "card_deck_steampunk" / "20251013_213529_Two_of_Spades.png"
    (outputs / "zodiac_signs" / "two.png").symlink_to(target)
    (packs / "Linked Deck").symlink_to(outputs / "card_deck_steampunk", target_is_directory=True)
    text = run_import(outputs, packs)

    image = Image.objects.get(original_filename="20251013_213529_Two_of_Spades.png")
    # Reached three times, stored once, in every album a path to it leads to (the ingest's dedup).
    assert {a.name for a in image.albums.all()} == {
        "Decks/card_deck_steampunk",
        "Zodiac/zodiac_signs",
        "Reference Packs/Linked Deck",
    }
    run = ImportRun.objects.get()
    assert run.links_outside_count == 0 and "links outside roots:   0" in text
    assert Image.objects.count() == 5


def test_follow_links_outside_imports_what_they_reach(tree, outside):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    (outputs / "zodiac_borrowed").symlink_to(outside / "nested", target_is_directory=True)
    text = run_import(outputs, packs, "--follow-links-outside")

    imported = Image.objects.filter(original_filename__in=["holiday.png", "beach.png"])
    assert sorted(imported.values_list("original_filename", flat=True)) == ["beach.png", "holiday.png"]
    run = ImportRun.objects.get()
    assert run.follow_links_outside is True and run.links_outside_count == 0
    assert not any(reason == LINK_OUTSIDE_ROOTS for reason in skipped_reasons(run).values())
    assert "links outside roots:   followed (--follow-links-outside)" in text


def test_broken_links_are_reported_and_the_run_succeeds(tree, tmp_path):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "gone.png").symlink_to(tmp_path / "deleted.png")
    (outputs / "zodiac_gone").symlink_to(tmp_path / "deleted-folder", target_is_directory=True)
    (outputs / "zodiac_signs" / "loop.png").symlink_to("loop.png")
    run_import(outputs, packs)

    run = ImportRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.imported_count == 5
    reasons = skipped_reasons(run)
    assert {path: reasons[path] for path in reasons if "gone" in path or "loop" in path} == {
        "outputs/zodiac_signs/gone.png": BROKEN_LINK,
        "outputs/zodiac_gone": BROKEN_LINK,
        "outputs/zodiac_signs/loop.png": BROKEN_LINK,
    }


def test_the_api_counts_refused_links_and_names_no_path(tree, outside, admin_client_api):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    run_import(outputs, packs)
    run = ImportRun.objects.get()

    response = admin_client_api.get(f"/api/admin/import-runs/{run.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["links_outside_count"] == 1 and body["follow_links_outside"] is False
    text = json.dumps(body)
    assert "somebody-elses-photos" not in text and "holiday" not in text and str(outputs) not in text


def test_the_api_cannot_turn_following_on(tree, outside, admin_client_api):
    """The option exists on the command only: a client's retry walks as the operator's run did."""
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    run = services.start_import_run(
        services.ImportOptions(outputs=outputs, packs=packs), manifest_path=outputs.parent / "m.yaml"
    )
    ImportRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED)
    response = admin_client_api.post(
        f"/api/admin/import-runs/{run.pk}/retry/", {"follow_links_outside": True}, format="json"
    )
    assert response.status_code == 202
    jobs.run_job(ImportRun, run.pk, services.run_import)  # what the retry's task runs

    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.follow_links_outside is False
    assert run.links_outside_count == 1
    assert not Image.objects.filter(original_filename="holiday.png").exists()


def test_a_retry_of_a_run_that_followed_links_follows_them_again(tree, outside, admin_client_api):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    run = services.start_import_run(
        services.ImportOptions(outputs=outputs, packs=packs, follow_links_outside=True),
        manifest_path=outputs.parent / "m.yaml",
    )
    ImportRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED)
    assert admin_client_api.post(f"/api/admin/import-runs/{run.pk}/retry/").status_code == 202
    jobs.run_job(ImportRun, run.pk, services.run_import)

    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert Image.objects.filter(original_filename="holiday.png").exists()


def test_the_run_page_lists_refused_links_with_their_reason(tree, outside, admin_browser):
    outputs, packs = tree
    (outputs / "zodiac_signs" / "holiday.png").symlink_to(outside / "holiday.png")
    run_import(outputs, packs)
    run = ImportRun.objects.get()
    page = admin_browser.get(f"/admin/legacy/importrun/{run.pk}/change/").content.decode()
    assert "outputs/zodiac_signs/holiday.png" in page and LINK_OUTSIDE_ROOTS in page
    assert "somebody-elses-photos" not in page
