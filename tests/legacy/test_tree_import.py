"""The importer on the generated legacy tree (every layout and awkward case of tests/legacy/tree.py)."""

import io

import pytest
from django.core.management import call_command

from albums.models import Album, Image
from labeling.models import LabelType
from legacy.models import ImportRun, LegacyAsset
from tests.assertions import files_under
from tests.legacy.helpers import state
from tests.legacy.tree import build_legacy_tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(tmp_path):
    return build_legacy_tree(tmp_path)


def import_tree(tree, *args) -> str:
    out = io.StringIO()
    call_command(
        "import_legacy_media",
        "--outputs",
        str(tree.outputs),
        "--packs",
        str(tree.packs),
        "--thumbnails",
        "none",
        "--private-packs",
        *tree.private_packs_arg,
        *args,
        stdout=out,
    )
    return out.getvalue()


def asset(tree, key) -> LegacyAsset:
    return LegacyAsset.objects.get(root=key[0], relative_path=key[1])


def test_every_image_once_each_in_its_album(tree, media_root):
    import_tree(tree)
    assert Image.objects.count() == tree.distinct_images
    assert len(files_under(media_root)) == tree.distinct_images
    run = ImportRun.objects.get()
    assert run.imported_count == tree.distinct_images and run.duplicate_count == 1
    assert run.orphan_sidecar_count == len(tree.orphan_sidecars)
    assert set(Album.objects.values_list("name", flat=True)) == set(tree.album_names.values())
    for key, album_key in tree.records.items():
        if key == tree.corrupt:
            continue
        assert asset(tree, key).image.albums.filter(name=tree.album_names[album_key]).exists(), key


def test_the_duplicate_pair_is_one_image_in_both_albums(tree):
    import_tree(tree)
    first, second = (asset(tree, key) for key in tree.duplicate_pair)
    assert first.image_id == second.image_id
    assert {first.outcome, second.outcome} == {"imported", "duplicate"}
    names = {tree.album_names[tree.records[key]] for key in tree.duplicate_pair}
    assert set(first.image.albums.values_list("name", flat=True)) == names


def test_corrupt_file_is_skipped_with_its_reason(tree):
    import_tree(tree)
    corrupt = asset(tree, tree.corrupt)
    assert corrupt.image is None and corrupt.outcome == "skipped" and "corrupt" in corrupt.reason
    reasons = {item["path"]: item["reason"] for item in ImportRun.objects.get().skipped}
    assert "corrupt" in reasons[f"{tree.corrupt[0]}/{tree.corrupt[1]}"]
    for (root, relative), reason in tree.skipped.items():
        assert reasons[f"{root}/{relative}"] == reason


def test_metadata_prompts_timestamps_loras_and_captions_reach_the_images(tree):
    import_tree(tree)
    a1111 = asset(tree, tree.a1111_only).image
    assert a1111.prompt == tree.a1111["prompt"] and a1111.seed == tree.a1111["seed"]
    for key, fields in tree.sidecar_fields.items():
        image = asset(tree, key).image
        for name in ("prompt", "negative_prompt", "seed", "steps", "guidance_scale"):
            if name in fields:
                assert getattr(image, name) == fields[name], (key, name)
    for key, loras in tree.loras.items():
        assert asset(tree, key).image.loras == [dict(lora) for lora in loras], key
    for key, (timestamp, _) in tree.timestamps.items():
        if key != tree.corrupt:
            assert asset(tree, key).image.created_at == timestamp, key
    for key, caption in tree.captions.items():
        labels = list(asset(tree, key).image.labels.values_list("label_type", "text"))
        assert labels == [(LabelType.CAPTION, caption)], key
    assert asset(tree, tree.bad_json).image is not None  # bad metadata never stops an import


def test_the_private_pack_is_private(tree):
    import_tree(tree)
    private = [a for a in Album.objects.filter(album_type="reference-pack") if not a.is_public]
    assert len(private) == 1 and not private[0].images.filter(is_public=True).exists()


def test_second_run_is_a_no_op_and_dry_run_changes_nothing(tree, media_root):
    import_tree(tree)
    before, files = state(), files_under(media_root)
    text = import_tree(tree)
    assert "images imported:       0" in text
    assert f"already present:       {tree.distinct_images + 1}" in text  # the duplicate too
    assert state() == before and files_under(media_root) == files
    import_tree(tree, "--dry-run")
    assert state() == before and files_under(media_root) == files and ImportRun.objects.count() == 2
