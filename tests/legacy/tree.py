"""A generated legacy tree (`outputs/` and `image packs/`) with the facts a test can assert.

`build_legacy_tree(tmp_path)` writes small real images (64×64, distinct pixels unless meant to be
identical) in every layout the legacy folders had, plus the awkward cases: sidecars good, broken and
orphaned, an A1111-only PNG, a truncated PNG, an empty file, stray files, thumbnails folders,
byte-identical files, non-ASCII (NFC and NFD) names, captions and a symlink cycle.

Images are keyed by (root, relative_path), root being "outputs" or "packs" as in LegacyRecord.
"""

from __future__ import annotations

import io
import json
import os
import random
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from legacy.collectors import ALREADY_SCANNED, EMPTY_FILE, NOT_AN_IMAGE, THUMBNAILS_FOLDER

Key = tuple[str, str]  # (root, relative_path)

BASE_MTIME = datetime(2024, 6, 1, tzinfo=UTC)
SIZE = (64, 64)

A1111_TEXT = (
    "a castle on a hill at dawn, <lora:castleStyle:0.8>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 123456789, Size: 64x64, "
    "Model hash: abc123, Model: sd15-base"
)
LONG_CAPTION_WORDS = ["wave"] * 400  # 1999 characters once joined: cut to 1000


@dataclass
class LegacyTree:
    root: Path
    outputs: Path
    packs: Path
    # Every file collect() should turn into a record → its album key.
    records: dict[Key, str] = field(default_factory=dict)
    # Album key → album name, for every album the records land in.
    album_names: dict[str, str] = field(default_factory=dict)
    # What collect() reports as skipped → the reason (folders appear once, not per file inside).
    skipped: dict[Key, str] = field(default_factory=dict)
    orphan_sidecars: list[str] = field(default_factory=list)
    # Files under thumbnails folders: never records, never listed one by one.
    thumbnails: list[Key] = field(default_factory=list)
    corrupt: Key = ("", "")  # a truncated PNG: a record here, rejected by the ingest when it decodes
    duplicate_pair: tuple[Key, Key] = (("", ""), ("", ""))  # same bytes, different names and folders
    # Images the ingest should store: records less the corrupt one and the second of the pair.
    distinct_images: int = 0
    # Expected (timestamp, timestamp_source) for the images whose time is the point.
    timestamps: dict[Key, tuple[datetime, str]] = field(default_factory=dict)
    a1111_only: Key = ("", "")
    a1111: dict = field(default_factory=dict)  # fields read from its chunk
    sidecar_fields: dict[Key, dict] = field(default_factory=dict)  # ImageMetadata fields from sidecars
    bad_json: Key = ("", "")
    bad_types: Key = ("", "")
    loras: dict[Key, tuple[dict, ...]] = field(default_factory=dict)
    captions: dict[Key, str] = field(default_factory=dict)
    cycle_link: Path = Path()
    private_pack: str = ""  # as on disk (NFD)
    private_packs_arg: tuple[str, ...] = ()  # what an operator types (NFC, other case): still matches

    def path(self, key: Key) -> Path:
        return (self.outputs if key[0] == "outputs" else self.packs) / key[1]


def image_bytes(seed: int, fmt: str = "PNG", pnginfo: PngInfo | None = None) -> bytes:
    """A 64×64 image of seeded noise: a different seed gives different pixels."""
    pixels = random.Random(seed).randbytes(SIZE[0] * SIZE[1] * 3)
    image = PILImage.frombytes("RGB", SIZE, pixels)
    out = io.BytesIO()
    if fmt == "PNG":
        image.save(out, "PNG", pnginfo=pnginfo)
    else:
        image.save(out, fmt, quality=90)
    return out.getvalue()


def _epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def build_legacy_tree(root: Path) -> LegacyTree:
    """Write the tree under `root` and return what a correct import finds in it."""
    outputs = root / "outputs"
    packs = root / "image packs"
    tree = LegacyTree(root=root, outputs=outputs, packs=packs)
    seeds = iter(range(1, 10_000))
    mtimes: dict[Path, datetime] = {}

    def write(key: Key, data: bytes | str) -> Path:
        path = tree.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def image(key: Key, album_key: str | None, *, fmt: str = "PNG", data: bytes | None = None) -> Path:
        path = write(key, data if data is not None else image_bytes(next(seeds), fmt))
        if album_key is not None:
            tree.records[key] = album_key
        return path

    def sidecar(key: Key, fields: dict) -> None:
        write((key[0], key[1].rsplit(".", 1)[0] + ".json"), json.dumps(fields))

    def album(key: str, name: str) -> str:
        tree.album_names[key] = name
        return key

    # --- singles at the outputs root -------------------------------------------------------
    jan = album("outputs/singles/2025-01", "Legacy Singles/2025-01")
    feb = album("outputs/singles/2025-02", "Legacy Singles/2025-02")
    mar = album("outputs/singles/2025-03", "Legacy Singles/2025-03")
    dec = album("outputs/singles/2024-12", "Legacy Singles/2024-12")

    sample = ("outputs", "20250115_123456_sample.png")
    image(sample, jan)
    sample_fields = {
        "prompt": "a lighthouse in fog",
        "negative_prompt": "people",
        "model": "runwayml/stable-diffusion-v1-5",
        "width": 64,
        "height": 64,
        "steps": 25,
        "guidance_scale": 7.5,
        "seed": 42,
    }
    sidecar(sample, sample_fields)
    tree.sidecar_fields[sample] = sample_fields
    tree.timestamps[sample] = (datetime(2025, 1, 15, 12, 34, 56, tzinfo=UTC), "filename")

    meta_time = ("outputs", "20250120_080000_meta.png")  # the sidecar's time wins over the name's
    image(meta_time, feb)
    sidecar(meta_time, {"prompt": "a red fox", "timestamp": "2025-02-03T04:05:06Z"})
    tree.timestamps[meta_time] = (datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC), "metadata")

    created_at = datetime(2025, 2, 2, tzinfo=UTC)
    epoch = ("outputs", "portrait_study.png")
    image(epoch, feb)
    sidecar(epoch, {"prompt": "portrait, oil", "created_at": int(created_at.timestamp())})
    tree.timestamps[epoch] = (created_at, "metadata")

    sunset = ("outputs", "sunset_study.png")  # no sidecar, no time in the name
    mtimes[image(sunset, dec)] = datetime(2024, 12, 24, 10, tzinfo=UTC)
    tree.timestamps[sunset] = (datetime(2024, 12, 24, 10, tzinfo=UTC), "mtime")

    bad_name = ("outputs", "20251399_999999_badname.png")  # not a real date: the mtime counts
    mtimes[image(bad_name, dec)] = datetime(2024, 12, 25, tzinfo=UTC)
    tree.timestamps[bad_name] = (datetime(2024, 12, 25, tzinfo=UTC), "mtime")

    jpeg = ("outputs", "20250310-090000_city.jpg")
    image(jpeg, mar, fmt="JPEG")
    tree.timestamps[jpeg] = (datetime(2025, 3, 10, 9, tzinfo=UTC), "filename")

    info = PngInfo()
    info.add_text("parameters", A1111_TEXT)
    tree.a1111_only = ("outputs", "20250311_101010_a1111.png")
    image(tree.a1111_only, mar, data=image_bytes(next(seeds), pnginfo=info))
    tree.a1111 = {
        "prompt": "a castle on a hill at dawn,",
        "negative_prompt": "blurry, lowres",
        "steps": 30,
        "guidance_scale": 7.0,
        "seed": 123456789,
        "width": 64,
        "height": 64,
        "model": "sd15-base",
        "loras": ({"name": "castleStyle", "weight": 0.8},),
    }

    tree.bad_json = ("outputs", "20250116_000000_badjson.png")
    image(tree.bad_json, jan)
    write(("outputs", "20250116_000000_badjson.json"), '{"prompt": "unterminated')

    tree.bad_types = ("outputs", "20250117_101010_badtypes.png")
    image(tree.bad_types, jan)
    write(
        ("outputs", "20250117_101010_badtypes.json"),
        '{"prompt": "typed", "seed": "abc", "steps": true, "guidance_scale": NaN, "width": "64"}',
    )

    tree.corrupt = ("outputs", "20250118_111111_corrupt.png")
    image(tree.corrupt, jan, data=image_bytes(next(seeds))[:120])

    empty = ("outputs", "20250119_000000_empty.png")
    write(empty, b"")
    tree.skipped[empty] = EMPTY_FILE

    for stray, content in (
        ("notes.txt", "todo: sort these"),
        (".DS_Store", "\0\0\0\1Bud1"),
        ("model.safetensors", "x"),
    ):
        write(("outputs", stray), content)
        tree.skipped[("outputs", stray)] = NOT_AN_IMAGE

    thumb = ("outputs", "thumbnails/20250115_123456_sample.png")
    image(thumb, None)
    tree.thumbnails.append(thumb)
    tree.skipped[("outputs", "thumbnails")] = THUMBNAILS_FOLDER

    # --- decks, tarot, zodiac ------------------------------------------------------------
    fantasy = album("outputs/decks/card_deck_fantasy", "Decks/card_deck_fantasy")
    lora_single = {"path": "/mnt/speedy/loras/fantasyCards.safetensors", "weight": 0.6}
    for name in ("20251013_213529_Two_of_Spades.png", "20251013_213600_Ace_of_Hearts.png"):
        key = ("outputs", f"card_deck_fantasy/{name}")
        image(key, fantasy)
        sidecar(key, {"prompt": f"{name[16:-4].replace('_', ' ')}, ornate card", "lora": lora_single})
        tree.loras[key] = ({"name": "fantasyCards", "weight": 0.6},)
    deck_thumb = ("outputs", "card_deck_fantasy/Thumbnails/ace_small.png")
    image(deck_thumb, None)
    tree.thumbnails.append(deck_thumb)
    tree.skipped[("outputs", "card_deck_fantasy/Thumbnails")] = THUMBNAILS_FOLDER

    major = album("outputs/decks/tarot_deck_major", "Decks/tarot_deck_major")
    fool = ("outputs", "tarot_deck_major/20251020_100000_The_Fool.png")
    image(fool, major)
    sidecar(
        fool,
        {
            "prompt": "The Fool, tarot card",
            "loras": [
                {"path": "C:\\loras\\tarotStyle.safetensors", "weight": 0.8},
                {"name": "inkWash", "weight": "0.3"},
            ],
        },
    )
    tree.loras[fool] = ({"name": "tarotStyle", "weight": 0.8}, {"name": "inkWash", "weight": 0.3})
    magician = ("outputs", "tarot_deck_major/20251020_100100_The_Magician.png")
    image(magician, major)
    sidecar(magician, {"prompt": "The Magician, tarot card", "loras": ["tarotStyle"]})
    tree.loras[magician] = ({"name": "tarotStyle", "weight": 1.0},)

    # A batch whose images were deleted: only the sidecars are left.
    for name in ("20251021_090000_a.json", "20251021_090100_b.json"):
        write(("outputs", f"tarot_deck_metadata_only/{name}"), json.dumps({"prompt": "lost card"}))
        tree.orphan_sidecars.append(f"tarot_deck_metadata_only/{name}")

    zodiac = album("outputs/zodiac/zodiac_signs", "Zodiac/zodiac_signs")
    aries = ("outputs", "zodiac_signs/aries.png")
    aries_bytes = image_bytes(next(seeds))
    image(aries, zodiac, data=aries_bytes)
    sidecar(aries, {"prompt": "aries ram, zodiac", "seed": 7})
    image(("outputs", "zodiac_signs/taurus.png"), zodiac)

    # --- lora_tests, with a symlink back up to the outputs root ------------------------------
    style_a = album("outputs/lora-experiments/style_a", "LoRA Experiments/style_a")
    for index, name in enumerate(("20250401_120000_a1.png", "20250401_120100_a2.png")):
        key = ("outputs", f"lora_tests/style_a/{name}")
        image(key, style_a)
        sidecar(key, {"prompt": "style test", "loras": [{"path": "loras/styleA.safetensors", "weight": 0.5 + index}]})
        tree.loras[key] = ({"name": "styleA", "weight": 0.5 + index},)
    tree.cycle_link = outputs / "lora_tests/style_a/loop"
    tree.cycle_link.symlink_to("../..", target_is_directory=True)
    tree.skipped[("outputs", "lora_tests/style_a/loop")] = ALREADY_SCANNED

    style_b = album("outputs/lora-experiments/style_b", "LoRA Experiments/style_b")
    aries_again = ("outputs", "lora_tests/style_b/aries_again.png")
    image(aries_again, style_b, data=aries_bytes)
    tree.duplicate_pair = (aries, aries_again)

    loose = album("outputs/lora-experiments/lora_tests", "LoRA Experiments/lora_tests")
    image(("outputs", "lora_tests/loose.png"), loose)

    # --- a dated batch folder, and a folder that is no legacy album -------------------------
    batch = album("outputs/batches/night_batch_20250302_101500", "Batches/night_batch_20250302_101500")
    for name in ("001.png", "002.png"):
        image(("outputs", f"night_batch_20250302_101500/{name}"), batch)
    upload = ("outputs", "uploads/upload_1.png")
    image(upload, None)
    tree.skipped[upload] = "not in a known legacy folder (uploads)"

    # --- reference packs -------------------------------------------------------------------
    fete = "Île de Fête"  # NFC on disk
    fete_key = album(f"packs/{fete}", f"Reference Packs/{fete}")
    ref_01 = ("packs", f"{fete}/ref_01.png")
    image(ref_01, fete_key)
    write(("packs", f"{fete}/ref_01.txt"), "  A sunny square\n\twith   flags.\n")
    tree.captions[ref_01] = "A sunny square with flags."
    image(("packs", f"{fete}/ref_02.jpg"), fete_key, fmt="JPEG")
    nfd_name = unicodedata.normalize("NFD", "café_terrasse.png")
    image(("packs", f"{fete}/{nfd_name}"), fete_key)

    waves_key = album("packs/Ocean Waves", "Reference Packs/Ocean Waves")
    wave_01 = ("packs", "Ocean Waves/wave_01.png")
    image(wave_01, waves_key)
    write(("packs", "Ocean Waves/wave_01.txt"), " ".join(LONG_CAPTION_WORDS))
    tree.captions[wave_01] = " ".join(LONG_CAPTION_WORDS)[:1000].rstrip()
    image(("packs", "Ocean Waves/wave_02.png"), waves_key)
    write(("packs", "Ocean Waves/unused.txt"), "a caption whose image is gone")
    tree.skipped[("packs", "Ocean Waves/unused.txt")] = NOT_AN_IMAGE

    tree.private_pack = unicodedata.normalize("NFD", "Café Noir")
    tree.private_packs_arg = ("café noir",)
    noir_key = album(f"packs/{unicodedata.normalize('NFC', tree.private_pack)}", "Reference Packs/Café Noir")
    image(("packs", f"{tree.private_pack}/noir_01.png"), noir_key)

    cover = ("packs", "cover.png")
    image(cover, None)
    tree.skipped[cover] = "not in a pack folder"
    write(("packs", "README.txt"), "Reference packs bought in 2024.")
    tree.skipped[("packs", "README.txt")] = NOT_AN_IMAGE

    # --- times on disk --------------------------------------------------------------------
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            moment = mtimes.get(path, BASE_MTIME)
            os.utime(path, ns=(_epoch_ns(moment), _epoch_ns(moment)))

    tree.distinct_images = len(tree.records) - 2  # the corrupt PNG, and one of the identical pair
    return tree
