"""The legacy import in the operator console: run history with counts and skipped files, provenance."""

from html import unescape

import pytest

from legacy.models import ImportRun, LegacyAlbum, LegacyAsset
from tests.legacy.helpers import run_import

pytestmark = pytest.mark.django_db


def test_run_history_shows_counts_and_skipped_files(admin_browser, tree):
    run_import(*tree)
    run = ImportRun.objects.get()
    listing = admin_browser.get("/admin/legacy/importrun/").content.decode()
    assert f"/admin/legacy/importrun/{run.pk}/change/" in listing
    page = unescape(admin_browser.get(f"/admin/legacy/importrun/{run.pk}/change/").content.decode())
    assert "outputs/card_deck_steampunk/broken.png" in page and "truncated or corrupt" in page
    assert "Imported count" in page


def test_provenance_per_file_and_album_keys(admin_browser, tree):
    run_import(*tree)
    asset = LegacyAsset.objects.filter(outcome="duplicate").get()
    page = unescape(admin_browser.get("/admin/legacy/legacyasset/?outcome=duplicate").content.decode())
    assert asset.relative_path in page and f"/admin/albums/image/{asset.image_id}/change/" in page
    assert admin_browser.get(f"/admin/legacy/legacyasset/{asset.pk}/change/").status_code == 200
    keys = unescape(admin_browser.get("/admin/legacy/legacyalbum/").content.decode())
    assert all(key in keys for key in LegacyAlbum.objects.values_list("key", flat=True))
