import unicodedata
from datetime import UTC, datetime

import pytest

from albums.models import AlbumType
from legacy.resolver import AlbumPlacement, Unplaced, album_slug, resolve_album

WHEN = datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC)


def place(root: str, relative_path: str, **kwargs) -> AlbumPlacement:
    placement = resolve_album(root, relative_path, WHEN, **kwargs)
    assert isinstance(placement, AlbumPlacement), placement
    return placement


@pytest.mark.parametrize(
    ("root", "relative_path", "category", "key", "name", "album_type"),
    [
        ("outputs", "x.png", "singles", "outputs/singles/2025-01", "Legacy Singles/2025-01", AlbumType.SINGLES),
        (
            "outputs",
            "card_deck_x/a.png",
            "decks",
            "outputs/decks/card_deck_x",
            "Decks/card_deck_x",
            AlbumType.DECK,
        ),
        (
            "outputs",
            "tarot_deck_major/sub/a.png",
            "decks",
            "outputs/decks/tarot_deck_major",
            "Decks/tarot_deck_major",
            AlbumType.DECK,
        ),
        ("outputs", "zodiac_x/a.png", "zodiac", "outputs/zodiac/zodiac_x", "Zodiac/zodiac_x", AlbumType.ZODIAC),
        (
            "outputs",
            "lora_tests/style_a/a.png",
            "lora-experiments",
            "outputs/lora-experiments/style_a",
            "LoRA Experiments/style_a",
            AlbumType.LORA_EXPERIMENT,
        ),
        (
            "outputs",
            "lora_tests/style_a/deeper/a.png",
            "lora-experiments",
            "outputs/lora-experiments/style_a",
            "LoRA Experiments/style_a",
            AlbumType.LORA_EXPERIMENT,
        ),
        (
            "outputs",
            "lora_tests/a.png",
            "lora-experiments",
            "outputs/lora-experiments/lora_tests",
            "LoRA Experiments/lora_tests",
            AlbumType.LORA_EXPERIMENT,
        ),
        (
            "outputs",
            "night_batch_20250302_101500/001.png",
            "batches",
            "outputs/batches/night_batch_20250302_101500",
            "Batches/night_batch_20250302_101500",
            AlbumType.BATCH,
        ),
        (
            "packs",
            "Île de Fête/a.png",
            "reference-packs",
            "packs/Île de Fête",
            "Reference Packs/Île de Fête",
            AlbumType.REFERENCE_PACK,
        ),
    ],
)
def test_taxonomy(root, relative_path, category, key, name, album_type):
    placement = place(root, relative_path)
    assert (placement.category, placement.key, placement.name, placement.album_type) == (
        category,
        key,
        name,
        album_type.value,
    )


def test_single_month_comes_from_the_timestamp():
    placement = resolve_album("outputs", "sunset.png", datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert (placement.key, placement.slug) == ("outputs/singles/2024-12", "2024-12")


def test_folder_prefixes_match_case_insensitively_and_keep_their_spelling():
    assert place("outputs", "Card_Deck_Big/a.png").name == "Decks/Card_Deck_Big"


def test_deck_wins_over_the_batch_pattern():
    assert place("outputs", "card_deck_20250101_101010/a.png").album_type == AlbumType.DECK.value


@pytest.mark.parametrize(
    ("root", "relative_path", "reason"),
    [
        ("outputs", "uploads/a.png", "not in a known legacy folder (uploads)"),
        ("outputs", "scraped/site/a.png", "not in a known legacy folder (scraped)"),
        ("outputs", "batch_2025_01/a.png", "not in a known legacy folder (batch_2025_01)"),
        ("outputs", "Night-Batch_20250302_101500/a.png", "not in a known legacy folder (Night-Batch_20250302_101500)"),
        ("packs", "cover.png", "not in a pack folder"),
    ],
)
def test_files_outside_known_folders_are_unplaced(root, relative_path, reason):
    assert resolve_album(root, relative_path, WHEN) == Unplaced(reason)


def test_pack_is_private_when_named():
    assert place("packs", "Secret/a.png", private_packs=["Secret"]).private is True


def test_pack_is_public_when_not_named():
    assert place("packs", "Open/a.png", private_packs=["Secret"]).private is False


def test_private_pack_names_match_ignoring_case_and_normal_form():
    nfd = unicodedata.normalize("NFD", "Café Noir")
    assert place("packs", f"{nfd}/a.png", private_packs=["CAFÉ NOIR"]).private is True


def test_private_packs_do_not_make_outputs_albums_private():
    assert place("outputs", "zodiac_x/a.png", private_packs=["zodiac_x"]).private is False


def test_keys_and_names_are_nfc_whatever_the_disk_form():
    nfd = unicodedata.normalize("NFD", "Île de Fête")
    placement = place("packs", f"{nfd}/a.png")
    assert placement.key == unicodedata.normalize("NFC", "packs/Île de Fête")
    assert placement.name == unicodedata.normalize("NFC", "Reference Packs/Île de Fête")


def test_slug_transliterates_to_ascii():
    assert place("packs", "Île de Fête/a.png").slug == "ile-de-fete"


def test_slug_keeps_underscores_of_folder_names():
    assert place("outputs", "card_deck_x/a.png").slug == "card_deck_x"


def test_slug_of_a_name_with_no_ascii_falls_back_to_album_and_a_key_hash():
    first, second = album_slug("日本", "packs/日本"), album_slug("中国", "packs/中国")
    assert first.startswith("album-") and second.startswith("album-")
    assert first != second


def test_slug_is_the_same_on_every_run():
    assert album_slug("日本", "packs/日本") == album_slug("日本", "packs/日本")


@pytest.mark.parametrize(
    ("root", "relative_path", "description"),
    [
        ("outputs", "card_deck_x/a.png", "Imported from the legacy outputs folder card_deck_x/."),
        ("outputs", "lora_tests/style_a/a.png", "Imported from the legacy outputs folder lora_tests/style_a/."),
        ("outputs", "lora_tests/a.png", "Imported from the legacy outputs folder lora_tests/."),
        ("packs", "Île de Fête/a.png", "Imported from the legacy image packs folder Île de Fête/."),
        ("outputs", "x.png", "Imported from the root of the legacy outputs folder (images from 2025-01)."),
    ],
)
def test_description_records_the_source_folder(root, relative_path, description):
    assert place(root, relative_path).description == description


def test_unknown_root_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown legacy root"):
        resolve_album("elsewhere", "a.png", WHEN)
