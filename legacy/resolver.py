"""The legacy album taxonomy: which album an image found under a legacy root belongs to.

Pure functions of the root name, the path relative to it and (for singles) the timestamp, so the
same image always lands in the same album key on every run.

Outputs, by the first path component:
  file at the root            → Legacy Singles/<YYYY-MM>       (singles, by timestamp)
  card_deck_* / tarot_deck_*  → Decks/<folder>                 (deck)
  zodiac_*                    → Zodiac/<folder>                (zodiac)
  lora_tests/<sub>/…          → LoRA Experiments/<sub>         (lora-experiment; files directly in
                                                                lora_tests → LoRA Experiments/lora_tests)
  <words>_YYYYMMDD_HHMMSS     → Batches/<folder>               (batch)
  anything else               → not imported
Packs: each top-level folder → Reference Packs/<pack> (reference-pack; private when named).
Folder names match case-insensitively; names and keys keep the folder's spelling, in NFC.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils.text import slugify

from albums.models import AlbumType

OUTPUTS = "outputs"
PACKS = "packs"
SLUG_MAX = 60

BATCH_FOLDER_RE = re.compile(r"^[a-z_]+_\d{8}_\d{6}$", re.IGNORECASE)


@dataclass(frozen=True)
class FolderRule:
    """What the path alone says: the category and album, except a single's month."""

    category: str
    album_type: str
    folder: str  # the album's folder name as on disk ("" for singles)
    source_folder: str  # the folder relative to the root, for the provenance note


@dataclass(frozen=True)
class AlbumPlacement:
    category: str
    key: str
    name: str
    slug: str
    album_type: str
    private: bool
    description: str


@dataclass(frozen=True)
class Unplaced:
    """A file that belongs to no legacy album, and why (the SkippedFile reason)."""

    reason: str


def folder_rule(root: str, relative_path: str) -> FolderRule | Unplaced:
    """Classify a file by its path under `root` ("outputs" or "packs"); no I/O, no timestamp needed."""
    parts = relative_path.split("/")
    if root == PACKS:
        if len(parts) == 1:
            return Unplaced("not in a pack folder")
        return FolderRule("reference-packs", AlbumType.REFERENCE_PACK.value, parts[0], parts[0])
    if root != OUTPUTS:
        raise ValueError(f"unknown legacy root {root!r}; expected {OUTPUTS!r} or {PACKS!r}")
    if len(parts) == 1:
        return FolderRule("singles", AlbumType.SINGLES.value, "", "")
    first = parts[0]
    lowered = first.lower()
    if lowered.startswith(("card_deck_", "tarot_deck_")):
        return FolderRule("decks", AlbumType.DECK.value, first, first)
    if lowered.startswith("zodiac_"):
        return FolderRule("zodiac", AlbumType.ZODIAC.value, first, first)
    if lowered == "lora_tests":
        sub = parts[1] if len(parts) > 2 else first
        source = f"{first}/{sub}" if len(parts) > 2 else first
        return FolderRule("lora-experiments", AlbumType.LORA_EXPERIMENT.value, sub, source)
    if BATCH_FOLDER_RE.match(first):
        return FolderRule("batches", AlbumType.BATCH.value, first, first)
    return Unplaced(f"not in a known legacy folder ({first})")


def resolve_album(
    root: str,
    relative_path: str,
    timestamp: datetime,
    *,
    private_packs: Iterable[str] = (),
) -> AlbumPlacement | Unplaced:
    """The album for one file. `timestamp` (aware) picks a single's month; `private_packs` are pack
    names whose albums are private, matched case-insensitively after NFC normalisation."""
    rule = folder_rule(root, relative_path)
    if isinstance(rule, Unplaced):
        return rule
    if rule.category == "singles":
        month = timestamp.strftime("%Y-%m")
        return AlbumPlacement(
            category="singles",
            key=f"outputs/singles/{month}",
            name=f"Legacy Singles/{month}",
            slug=month,
            album_type=rule.album_type,
            private=False,
            description=f"Imported from the root of the legacy outputs folder (images from {month}).",
        )
    folder = nfc(rule.folder)
    prefix = {
        "decks": "Decks",
        "zodiac": "Zodiac",
        "lora-experiments": "LoRA Experiments",
        "batches": "Batches",
        "reference-packs": "Reference Packs",
    }[rule.category]
    key_root = PACKS if root == PACKS else f"outputs/{rule.category}"
    key = f"{key_root}/{folder}"
    where = "image packs folder" if root == PACKS else "outputs folder"
    return AlbumPlacement(
        category=rule.category,
        key=key,
        name=f"{prefix}/{folder}",
        slug=album_slug(folder, key),
        album_type=rule.album_type,
        private=root == PACKS and is_private_pack(folder, private_packs),
        description=f"Imported from the legacy {where} {nfc(rule.source_folder)}/.",
    )


def album_slug(folder: str, key: str) -> str:
    """ASCII slug of a folder name for media paths; a name with no ASCII letters or digits gets
    `album-<hash of the key>` so two such albums do not share a folder."""
    slug = slugify(folder, allow_unicode=False)[:SLUG_MAX].strip("-_")
    if slug:
        return slug
    return "album-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def is_private_pack(pack: str, private_packs: Iterable[str]) -> bool:
    wanted = nfc(pack).casefold()
    return any(nfc(name).casefold() == wanted for name in private_packs)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)
