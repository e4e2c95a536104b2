import json
import os
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from legacy.collectors import (
    ALREADY_SCANNED,
    BAD_FILE_NAME,
    BROKEN_LINK,
    LINK_OUTSIDE_ROOTS,
    LegacyRootMissing,
    collect,
)
from legacy.records import Collection
from tests.legacy.tree import LegacyTree, build_legacy_tree, image_bytes


@pytest.fixture
def tree(tmp_path) -> LegacyTree:
    return build_legacy_tree(tmp_path / "legacy")


@pytest.fixture
def collection(tree) -> Collection:
    return collect(tree.outputs, tree.packs, private_packs=tree.private_packs_arg)


def by_key(collection: Collection) -> dict:
    return {(record.root, record.relative_path): record for record in collection.records}


def skipped(collection: Collection) -> dict:
    return {(skip.root, skip.relative_path): skip.reason for skip in collection.skipped}


# --- over the generated tree --------------------------------------------------------------


def test_every_expected_image_is_found_once(tree, collection):
    found = Counter((record.root, record.relative_path) for record in collection.records)
    assert set(found) == set(tree.records)
    assert set(found.values()) == {1}


def test_records_land_in_the_expected_album_keys(tree, collection):
    assert {key: record.album_key for key, record in by_key(collection).items()} == tree.records


def test_album_names_follow_the_taxonomy(tree, collection):
    assert {record.album_key: record.album_name for record in collection.records} == tree.album_names


def test_skipped_files_carry_their_reasons(tree, collection):
    assert skipped(collection) == tree.skipped


def test_thumbnails_are_never_collected(tree, collection):
    collected = {(r.root, r.relative_path) for r in collection.records}
    assert not collected & set(tree.thumbnails)
    assert not any("thumbnails" in r.relative_path.lower() for r in collection.records)


def test_symlink_cycle_is_reported_once_and_not_walked(tree, collection):
    assert skipped(collection)[("outputs", "lora_tests/style_a/loop")] == ALREADY_SCANNED
    assert not any("/loop/" in r.relative_path for r in collection.records)


def test_orphan_sidecars_are_listed(tree, collection):
    assert [(o.root, o.relative_path) for o in collection.orphan_sidecars] == [
        ("outputs", p) for p in tree.orphan_sidecars
    ]
    assert {o.reason for o in collection.orphan_sidecars} == {"JSON sidecar without its image"}


def test_sidecars_and_captions_of_images_are_not_skipped(collection):
    assert not any(s.relative_path.endswith(".json") for s in collection.skipped)
    assert ("packs", "Île de Fête/ref_01.txt") not in skipped(collection)


def test_named_pack_is_private_and_others_are_not(tree, collection):
    private = {r.album_key for r in collection.records if r.album_private}
    assert private == {f"packs/{unicodedata.normalize('NFC', tree.private_pack)}"}


def test_timestamps_come_from_each_source(tree, collection):
    records = by_key(collection)
    got = {key: (records[key].timestamp, records[key].timestamp_source) for key in tree.timestamps}
    assert got == tree.timestamps
    assert {source for _, source in got.values()} == {"metadata", "filename", "mtime"}


def test_sidecar_fields_are_read(tree, collection):
    records = by_key(collection)
    for key, fields in tree.sidecar_fields.items():
        meta = records[key].metadata
        assert {name: getattr(meta, name) for name in fields} == fields
        assert meta.source == "sidecar"


def test_a1111_only_png_fields_are_read(tree, collection):
    meta = by_key(collection)[tree.a1111_only].metadata
    assert meta.source == "a1111"
    assert {name: getattr(meta, name) for name in tree.a1111} == tree.a1111


def test_loras_are_read_from_both_sidecar_forms(tree, collection):
    records = by_key(collection)
    assert {key: records[key].metadata.loras for key in tree.loras} == tree.loras


def test_captions_are_read_beside_reference_images(tree, collection):
    records = by_key(collection)
    assert {key: records[key].metadata.caption for key in tree.captions} == tree.captions
    assert records[("packs", "Île de Fête/ref_02.jpg")].metadata.caption == ""


def test_bad_sidecar_json_gives_problems_and_still_a_record(tree, collection):
    record = by_key(collection)[tree.bad_json]
    assert record.metadata.problems == ("sidecar is not valid JSON",)
    assert record.album_key == "outputs/singles/2025-01"


def test_bad_sidecar_values_are_dropped_and_the_rest_kept(tree, collection):
    meta = by_key(collection)[tree.bad_types].metadata
    assert (meta.prompt, meta.width, meta.seed, meta.steps, meta.guidance_scale) == ("typed", 64, None, None, None)
    assert len(meta.problems) == 3


def test_corrupt_png_is_left_for_the_ingest_to_judge(tree, collection):
    assert tree.corrupt in by_key(collection)


def test_identical_files_are_two_records(tree, collection):
    first, second = (by_key(collection)[key] for key in tree.duplicate_pair)
    assert first.source_path.read_bytes() == second.source_path.read_bytes()
    assert first.album_key != second.album_key


def test_record_file_facts_match_the_disk(collection):
    for record in collection.records:
        info = os.stat(record.source_path)
        assert record.source_path.is_absolute()
        assert (record.size, record.mtime_ns) == (info.st_size, info.st_mtime_ns)
        assert record.timestamp.utcoffset().total_seconds() == 0


def test_relative_path_keeps_the_name_as_on_disk(collection):
    nfd = unicodedata.normalize("NFD", "café_terrasse.png")
    assert any(r.relative_path == f"Île de Fête/{nfd}" for r in collection.records)


def test_descriptions_and_problems_show_no_absolute_paths(tree, collection):
    for record in collection.records:
        assert str(tree.root) not in record.album_description
        assert not any(str(tree.root) in problem for problem in record.metadata.problems)


def test_media_slugs_are_ascii(collection):
    assert all(r.album_slug.isascii() and r.album_slug for r in collection.records)
    assert {r.album_slug for r in collection.records if r.root == "packs"} == {
        "ile-de-fete",
        "ocean-waves",
        "cafe-noir",
    }


def test_results_are_in_path_order_and_repeatable(tree, collection):
    again = collect(tree.outputs, tree.packs, private_packs=tree.private_packs_arg)
    assert again == collection
    roots = [r.root for r in collection.records]
    assert roots == sorted(roots, key=["outputs", "packs"].index)


def test_limit_caps_records_to_the_first_n(tree, collection):
    limited = collect(tree.outputs, tree.packs, limit=5)
    assert [r.relative_path for r in limited.records] == [r.relative_path for r in collection.records[:5]]


def test_limit_zero_collects_nothing(tree):
    assert collect(tree.outputs, tree.packs, limit=0).records == []


def test_negative_limit_is_refused(tree):
    with pytest.raises(ValueError):
        collect(tree.outputs, None, limit=-1)


def test_outputs_alone_can_be_collected(tree):
    assert {r.root for r in collect(tree.outputs, None).records} == {"outputs"}


# --- roots --------------------------------------------------------------------------------


def test_missing_outputs_root_raises(tmp_path):
    with pytest.raises(LegacyRootMissing, match="does not exist"):
        collect(tmp_path / "nope", None)


def test_missing_packs_root_raises_before_scanning(tree, tmp_path):
    with pytest.raises(LegacyRootMissing, match="image packs folder"):
        collect(tree.outputs, tmp_path / "nope")


def test_root_that_is_a_file_raises(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LegacyRootMissing, match="not a directory"):
        collect(tmp_path / "file", None)


def test_symlinked_root_is_followed(tree, tmp_path, collection):
    link = tmp_path / "outputs-link"
    link.symlink_to(tree.outputs, target_is_directory=True)
    through_link = collect(link, None)
    expected = [r.relative_path for r in collection.records if r.root == "outputs"]
    assert [r.relative_path for r in through_link.records] == expected
    assert all(r.source_path.is_relative_to(link) for r in through_link.records)


# --- walking details ----------------------------------------------------------------------


def png(path: Path, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(seed))
    return path


def test_symlink_alias_of_a_folder_is_collected_under_the_real_path(tmp_path):
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    (outputs / "a_alias").symlink_to("zodiac_x", target_is_directory=True)  # sorts before the real one
    result = collect(outputs, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/a.png"]
    assert skipped(result) == {("outputs", "a_alias"): ALREADY_SCANNED}


def test_symlink_to_a_folder_outside_the_roots_is_skipped_and_not_walked(tmp_path):
    png(tmp_path / "elsewhere/a.png")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "zodiac_linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = collect(outputs, None)
    assert result.records == []
    assert skipped(result) == {("outputs", "zodiac_linked"): LINK_OUTSIDE_ROOTS}


def test_symlink_to_a_file_outside_the_roots_is_skipped(tmp_path):
    png(tmp_path / "elsewhere/private.png")
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/mine.png", 2)
    (outputs / "zodiac_x/linked.png").symlink_to(tmp_path / "elsewhere/private.png")
    result = collect(outputs, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/mine.png"]
    assert skipped(result) == {("outputs", "zodiac_x/linked.png"): LINK_OUTSIDE_ROOTS}


def test_refusal_names_the_link_and_never_its_target(tmp_path):
    png(tmp_path / "secret-place/a.png")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "x.png").symlink_to(tmp_path / "secret-place/a.png")
    (outputs / "zodiac_y").symlink_to(tmp_path / "secret-place", target_is_directory=True)
    assert "secret-place" not in repr(collect(outputs, None).skipped)


def test_follow_links_outside_walks_links_out_of_the_roots(tmp_path):
    png(tmp_path / "elsewhere/a.png")
    png(tmp_path / "loose.png", 2)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "zodiac_linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (outputs / "linked.png").symlink_to(tmp_path / "loose.png")
    result = collect(outputs, None, follow_links_outside=True)
    assert [r.relative_path for r in result.records] == ["linked.png", "zodiac_linked/a.png"]
    assert result.skipped == []


def test_symlink_to_a_file_inside_the_roots_is_collected_under_the_link_too(tmp_path):
    # As before the rule: a file reached twice is two records; the ingest stores its bytes once.
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    (outputs / "zodiac_y").mkdir()
    (outputs / "zodiac_y/a.png").symlink_to("../zodiac_x/a.png")
    result = collect(outputs, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/a.png", "zodiac_y/a.png"]
    assert result.skipped == []


def test_symlink_into_the_other_root_is_inside(tmp_path):
    outputs, packs = tmp_path / "outputs", tmp_path / "packs"
    png(packs / "Pack/a.png")
    outputs.mkdir()
    (outputs / "zodiac_from_pack").symlink_to(packs / "Pack", target_is_directory=True)
    result = collect(outputs, packs)
    assert [(r.root, r.relative_path) for r in result.records] == [
        ("outputs", "zodiac_from_pack/a.png"),
        ("packs", "Pack/a.png"),
    ]


def test_link_to_the_folder_above_a_root_is_outside(tmp_path):
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    png(tmp_path / "beside/b.png", 2)
    (outputs / "zodiac_x/up").symlink_to("../..", target_is_directory=True)
    result = collect(outputs, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/a.png"]
    assert skipped(result) == {("outputs", "zodiac_x/up"): LINK_OUTSIDE_ROOTS}


def test_a_chain_of_links_is_judged_by_where_it_ends(tmp_path):
    png(tmp_path / "elsewhere/a.png")
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/b.png", 2)
    (outputs / "hop.png").symlink_to(tmp_path / "elsewhere/a.png")
    (outputs / "zodiac_x/via_hop.png").symlink_to("../hop.png")  # an inside link to an outside link
    (tmp_path / "back.png").symlink_to(outputs / "zodiac_x/b.png")
    (outputs / "zodiac_x/out_and_back.png").symlink_to(tmp_path / "back.png")  # leaves, ends inside
    result = collect(outputs, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/b.png", "zodiac_x/out_and_back.png"]
    assert skipped(result) == {
        ("outputs", "hop.png"): LINK_OUTSIDE_ROOTS,
        ("outputs", "zodiac_x/via_hop.png"): LINK_OUTSIDE_ROOTS,
    }


def test_links_in_a_symlinked_root_are_judged_against_its_real_folder(tmp_path):
    real = tmp_path / "real-outputs"
    png(real / "zodiac_x/a.png")
    (real / "zodiac_alias").symlink_to(real / "zodiac_x", target_is_directory=True)  # absolute, real path
    link = tmp_path / "outputs-link"
    link.symlink_to(real, target_is_directory=True)
    result = collect(link, None)
    assert [r.relative_path for r in result.records] == ["zodiac_x/a.png"]
    assert skipped(result) == {("outputs", "zodiac_alias"): ALREADY_SCANNED}


def test_sidecar_linked_from_outside_is_not_read(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/notes.json").write_text(json.dumps({"prompt": "someone else's words"}))
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    (outputs / "zodiac_x/a.json").symlink_to(tmp_path / "elsewhere/notes.json")
    result = collect(outputs, None)
    assert result.records[0].metadata.prompt == "" and result.records[0].sidecar_path is None
    assert skipped(result) == {("outputs", "zodiac_x/a.json"): LINK_OUTSIDE_ROOTS}


@pytest.mark.parametrize("follow_links_outside", [False, True])
def test_symlink_loops_are_reported_and_the_walk_ends(tmp_path, follow_links_outside):
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    (outputs / "zodiac_x/self.png").symlink_to("self.png")
    (outputs / "zodiac_x/ping").symlink_to("pong")
    (outputs / "zodiac_x/pong").symlink_to("ping")
    result = collect(outputs, None, follow_links_outside=follow_links_outside)
    assert [r.relative_path for r in result.records] == ["zodiac_x/a.png"]
    assert skipped(result) == {("outputs", f"zodiac_x/{name}"): BROKEN_LINK for name in ("ping", "pong", "self.png")}


def test_folder_cycle_through_outside_is_walked_once_when_following_links_out(tmp_path):
    outputs = tmp_path / "outputs"
    png(outputs / "zodiac_x/a.png")
    png(tmp_path / "elsewhere/b.png", 2)
    (outputs / "zodiac_out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere/back").symlink_to(outputs, target_is_directory=True)
    result = collect(outputs, None, follow_links_outside=True)
    assert [r.relative_path for r in result.records] == ["zodiac_out/b.png", "zodiac_x/a.png"]
    assert skipped(result) == {("outputs", "zodiac_out/back"): ALREADY_SCANNED}


def test_sidecar_matches_case_insensitively(tmp_path):
    png(tmp_path / "zodiac_x/A.PNG")
    (tmp_path / "zodiac_x/a.json").write_text(json.dumps({"prompt": "upper"}))
    result = collect(tmp_path, None)
    assert result.records[0].metadata.prompt == "upper"
    assert result.orphan_sidecars == []


def test_text_beside_an_output_image_is_not_a_caption(tmp_path):
    png(tmp_path / "x.png")
    (tmp_path / "x.txt").write_text("prompt notes")
    result = collect(tmp_path, None)
    assert result.records[0].metadata.caption == ""
    assert skipped(result) == {("outputs", "x.txt"): "not an image"}


def test_hidden_files_are_skipped_and_hidden_folders_ignored(tmp_path):
    png(tmp_path / "._x.png")
    png(tmp_path / ".cache/y.png")
    result = collect(tmp_path, None)
    assert result.records == []
    assert skipped(result) == {("outputs", "._x.png"): "not an image"}


def test_extensions_match_case_insensitively(tmp_path):
    for name in ("a.PNG", "b.Jpeg", "c.webp", "d.GIF", "e.jpg"):
        png(tmp_path / name)
    assert len(collect(tmp_path, None).records) == 5


def test_dangling_symlink_is_reported_as_broken(tmp_path):
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "zodiac_gone").symlink_to(tmp_path / "missing", target_is_directory=True)
    assert skipped(collect(tmp_path, None)) == {
        ("outputs", "gone.png"): BROKEN_LINK,
        ("outputs", "zodiac_gone"): BROKEN_LINK,
    }


def test_fifo_named_like_an_image_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    assert skipped(collect(tmp_path, None)) == {("outputs", "pipe.png"): "not a regular file"}


def test_file_name_that_is_not_utf8_is_skipped(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(name, "wb") as handle:
        handle.write(image_bytes(1))
    result = collect(tmp_path, None)
    assert result.records == []
    assert [s.reason for s in result.skipped] == [BAD_FILE_NAME]


def test_sidecar_of_an_empty_image_is_not_an_orphan(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "x.json").write_text("{}")
    result = collect(tmp_path, None)
    assert (result.orphan_sidecars, skipped(result)) == ([], {("outputs", "x.png"): "empty file"})
