"""kill -9 in the middle of an import, run it again: the result equals one clean run."""

import shutil
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command

from albums.models import Album, Image
from legacy.models import LegacyAlbum, LegacyAsset
from tests import processes
from tests.assertions import files_under
from tests.legacy.helpers import png, state
from tests.processes import ROOT, base_env, kill_tree

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def make_tree(root, count: int = 120):
    outputs = root / "outputs"
    for i in range(count):
        folder = outputs / ("card_deck_big" if i % 3 else "zodiac_big")
        png(folder / f"20250101_0000{i % 60:02d}_card_{i}.png", 1000 + i, size=(96, 96))
    return outputs


def killed_import(outputs, media_root, *, after_assets: int) -> None:
    """Start the command in its own process and SIGKILL it once `after_assets` files are in."""
    from django.conf import settings

    env = base_env(
        IMAGINEER_DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=processes.test_database_url(),  # imported by module: pytest would collect test_*
        MEDIA_ROOT=str(media_root),
        IMAGINEER_LEGACY_IMPORT_BATCH="10",  # rows land ten at a time, so the kill falls mid-run
    )
    command = [sys.executable, "manage.py", "import_legacy_media", "--outputs", str(outputs), "--thumbnails", "inline"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while LegacyAsset.objects.count() < after_assets:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the import never got going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_tree(proc)


def clean_slate(media_root):
    LegacyAsset.objects.all().delete()
    LegacyAlbum.objects.all().delete()
    Image.objects.all().delete()
    Album.objects.all().delete()
    shutil.rmtree(media_root)
    media_root.mkdir()


@pytest.mark.parametrize("after_assets", [1, 37, 80])  # killed while staging the batch after
def test_kill_and_rerun_equals_a_clean_run(tmp_path, media_root, after_assets):
    outputs = make_tree(tmp_path)
    killed_import(outputs, media_root, after_assets=after_assets)
    assert 0 < LegacyAsset.objects.count() < 120  # it really was killed half-way
    # Usually the kill lands while the next batch's files are written and its rows are not (seen:
    # 0-17 such files per kill): the rerun below must leave none of them behind.
    call_command("import_legacy_media", "--outputs", str(outputs), "--thumbnails", "inline")
    after_crash = state()
    media_after_crash = files_under(media_root)
    # Nothing orphaned: every media file belongs to exactly one image row (file or thumbnail).
    referenced = sorted(
        [*Image.objects.values_list("file", flat=True), *Image.objects.values_list("thumbnail", flat=True)]
    )
    assert media_after_crash == referenced
    assert all(image.albums.exists() for image in Image.objects.all())

    clean_slate(media_root)
    call_command("import_legacy_media", "--outputs", str(outputs), "--thumbnails", "inline")
    assert state() == after_crash
    assert len(after_crash["images"]) == 120
    # Same media names for the originals (deterministic); thumbnails are named anew each time.
    originals = [name for name in files_under(media_root) if name.startswith("legacy/")]
    assert originals == [name for name in media_after_crash if name.startswith("legacy/")]
