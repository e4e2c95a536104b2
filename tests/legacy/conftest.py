"""The small legacy tree most import tests run on (the big one is tests/legacy/tree.py)."""

import json

import pytest

from tests.legacy.helpers import png


@pytest.fixture(autouse=True)
def own_data_dir(settings, tmp_path):
    """Each test its own DATA_DIR: the import lock and the default manifest live there, and with
    one shared folder a test on another xdist worker (a kill -9 test's subprocess holding the lock)
    made imports fail with ImportAlreadyRunning."""
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def tree(tmp_path):
    """A small legacy tree: singles in two months, a deck with sidecars, a duplicate, a corrupt file, a pack."""
    outputs, packs = tmp_path / "outputs", tmp_path / "image packs"
    png(outputs / "20250115_123456_sample.png", 1)
    (outputs / "20250115_123456_sample.json").write_text(
        json.dumps(
            {"prompt": "a lighthouse", "seed": 7, "steps": 20, "lora": {"path": "loras/ink.safetensors", "weight": 0.6}}
        )
    )
    png(outputs / "20250203_101010_other.png", 2)
    png(outputs / "card_deck_steampunk" / "20251013_213529_Two_of_Spades.png", 3)
    (outputs / "card_deck_steampunk" / "20251013_213529_Two_of_Spades.json").write_text(
        json.dumps({"prompt": "two of spades"})
    )
    duplicate = png(outputs / "card_deck_steampunk" / "20251013_213530_Ace.png", 4)
    (outputs / "zodiac_signs" / "aries_copy.png").parent.mkdir(parents=True)
    (outputs / "zodiac_signs" / "aries_copy.png").write_bytes(duplicate)  # the same bytes, another folder
    (outputs / "card_deck_steampunk" / "broken.png").write_bytes(png(outputs / "tmp.png", 5)[:60])
    (outputs / "tmp.png").unlink()
    (outputs / "notes.txt").write_text("not an image")
    png(packs / "Île de Fête" / "ref 1.png", 6)
    (packs / "Île de Fête" / "ref 1.txt").write_text("  a  harbour at dusk ")
    return outputs, packs
