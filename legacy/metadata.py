"""Metadata of legacy images: JSON sidecars, A1111 `parameters` PNG chunks, `.txt` captions, timestamps.

Nothing here raises on bad input: a value that cannot be used is dropped and described in
`ImageMetadata.problems` (without paths, so the notes can be shown and stored anywhere).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from generation.pipeline.metadata import parse_a1111_parameters
from legacy.records import ImageMetadata

CAPTION_MAX = 1000  # labeling.models.LABEL_TEXT_MAX; not imported so this module needs no Django app registry
MODEL_MAX = 255  # albums.models.Image.model max_length
TEXT_FIELD_MAX = 100_000  # a prompt longer than this is not a prompt
SIDECAR_MAX_BYTES = 1_000_000
CAPTION_MAX_BYTES = 100_000

INT_MAX = 2**31 - 1  # PositiveIntegerField
SEED_MAX = 2**63 - 1  # BigIntegerField
# Timestamps outside these years are defaults or typos, not when an image was made.
YEAR_MIN, YEAR_MAX = 1990, 2100

LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# `YYYYMMDD_HHMMSS` or `YYYYMMDD-HHMMSS`, not part of a longer run of digits.
NAME_TIMESTAMP_RE = re.compile(r"(?<!\d)(\d{8})[_-](\d{6})(?!\d)")
COMPACT_TIMESTAMP_RE = re.compile(r"^(\d{8})[_-]?(\d{6})$")
EPOCH_RE = re.compile(r"^-?\d+(\.\d+)?$")

# Sidecar key → ImageMetadata field; the first key present wins.
STRING_KEYS = {
    "prompt": ("prompt",),
    "negative_prompt": ("negative_prompt", "negative"),
    "model": ("model", "model_id", "model_name"),
}
NUMBER_KEYS = {
    "width": ("width",),
    "height": ("height",),
    "steps": ("steps", "num_inference_steps"),
    "guidance_scale": ("guidance_scale", "cfg_scale"),
    "seed": ("seed",),
}
TIMESTAMP_KEYS = ("timestamp", "created_at")


@dataclass(frozen=True)
class Sidecar:
    """A `<stem>.json` beside an image: `data` is {} when there is none or it is unusable."""

    path: Path | None = None
    data: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()


def sidecar_path_for(image_path: Path) -> Path | None:
    """`<stem>.json` beside the image, else `<name>.json` (the form the old stager wrote), else None."""
    for candidate in (image_path.with_suffix(".json"), image_path.with_name(image_path.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def caption_path_for(image_path: Path) -> Path | None:
    candidate = image_path.with_suffix(".txt")
    return candidate if candidate.is_file() else None


def read_sidecar(path: Path | None) -> Sidecar:
    """Load a sidecar; a missing path gives an empty Sidecar, a broken one an empty one with problems."""
    if path is None:
        return Sidecar()
    try:
        with open(path, "rb") as handle:
            raw = handle.read(SIDECAR_MAX_BYTES + 1)
    except OSError:
        return Sidecar(path, None, ("sidecar could not be read",))
    if len(raw) > SIDECAR_MAX_BYTES:
        return Sidecar(path, None, (f"sidecar is larger than {SIDECAR_MAX_BYTES} bytes",))
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return Sidecar(path, None, ("sidecar is not UTF-8 text",))
    except (ValueError, RecursionError):
        return Sidecar(path, None, ("sidecar is not valid JSON",))
    if not isinstance(data, dict):
        return Sidecar(path, None, (f"sidecar is a JSON {type(data).__name__}, not an object",))
    return Sidecar(path, data, ())


def read_metadata(
    image_path: Path,
    *,
    caption_file: bool,
    sidecar: Sidecar | None = None,
    caption_path: Path | None = None,
) -> ImageMetadata:
    """Generation fields for one image: its sidecar wins, else a PNG's A1111 chunk, else nothing.

    `sidecar` and `caption_path` may be passed when the caller has already found them (the collector
    matches companions case-insensitively from its directory listing); otherwise they are looked up
    beside the image. A caption is read only when `caption_file` is true.
    """
    if sidecar is None:
        sidecar = read_sidecar(sidecar_path_for(image_path))
    problems: list[str] = list(sidecar.problems)
    fields: dict[str, Any] = {}
    source = ""
    if sidecar.data is not None:
        fields = _sidecar_fields(sidecar.data, problems)
        source = "sidecar"
    elif image_path.suffix.lower() == ".png":
        text = _png_parameters(image_path, problems)
        if text:
            fields = _a1111_fields(text, problems)
            source = "a1111" if fields else ""
    if caption_file:
        if caption_path is None:
            caption_path = caption_path_for(image_path)
        if caption_path is not None:
            fields["caption"] = read_caption(caption_path, problems)
    return ImageMetadata(source=source, problems=tuple(problems), **fields)


def read_caption(path: Path, problems: list[str]) -> str:
    """A caption file's text, whitespace collapsed to single spaces, at most CAPTION_MAX characters."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(CAPTION_MAX_BYTES)
    except OSError:
        problems.append("caption file could not be read")
        return ""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append("caption file is not UTF-8; undecodable bytes were replaced")
        text = raw.decode("utf-8-sig", errors="replace")
    text = " ".join(text.replace("\x00", "").split())
    if len(text) > CAPTION_MAX:
        problems.append(f"caption cut to {CAPTION_MAX} characters")
        text = text[:CAPTION_MAX].rstrip()
    return text


# --- timestamps -------------------------------------------------------------------------------


def timestamp_of(metadata_raw: dict[str, Any] | None, name: str, mtime: float) -> tuple[datetime, str]:
    """When an image was made, as aware UTC, and where that came from: "metadata", "filename" or "mtime".

    Sidecar `timestamp` or `created_at` (ISO 8601, `YYYYMMDD_HHMMSS`, or epoch seconds), else a
    `YYYYMMDD_HHMMSS` / `YYYYMMDD-HHMMSS` in the file name that is a real date, else the mtime.
    Times without a zone are taken as UTC.
    """
    for key in TIMESTAMP_KEYS:
        value = (metadata_raw or {}).get(key)
        if value is not None:
            parsed = parse_timestamp(value)
            if parsed is not None:
                return parsed, "metadata"
    parsed = timestamp_in_name(name)
    if parsed is not None:
        return parsed, "filename"
    try:
        return datetime.fromtimestamp(mtime, tz=UTC), "mtime"
    except (OverflowError, OSError, ValueError):
        return datetime(1970, 1, 1, tzinfo=UTC), "mtime"


def parse_timestamp(value: Any) -> datetime | None:
    """A sidecar timestamp value as aware UTC, or None when it is not a plausible date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    compact = COMPACT_TIMESTAMP_RE.match(text)
    if compact:
        return _from_digits(*compact.groups())
    if EPOCH_RE.match(text):
        return _from_epoch(float(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _plausible(parsed.astimezone(UTC))


def timestamp_in_name(name: str) -> datetime | None:
    """The first `YYYYMMDD_HHMMSS` (or `-`) in a file name that is a real, plausible date."""
    for date_part, time_part in NAME_TIMESTAMP_RE.findall(name):
        parsed = _from_digits(date_part, time_part)
        if parsed is not None:
            return parsed
    return None


def _from_digits(date_part: str, time_part: str) -> datetime | None:
    try:
        parsed = datetime.strptime(date_part + time_part, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return _plausible(parsed)


def _from_epoch(value: float) -> datetime | None:
    if not math.isfinite(value):
        return None
    if abs(value) > 1e11:  # JavaScript's Date.now() writes milliseconds
        value = value / 1000
    try:
        parsed = datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return _plausible(parsed)


def _plausible(parsed: datetime) -> datetime | None:
    return parsed if YEAR_MIN <= parsed.year <= YEAR_MAX else None


# --- generation fields ------------------------------------------------------------------------


def _sidecar_fields(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field, keys in STRING_KEYS.items():
        key = next((k for k in keys if data.get(k) is not None), None)
        if key is not None:
            text = _clean_string(field, data[key], problems)
            if text:
                fields[field] = text
    for field, keys in NUMBER_KEYS.items():
        key = next((k for k in keys if data.get(k) is not None), None)
        if key is not None:
            number = _coerce_number(field, data[key], problems)
            if number is not None:
                fields[field] = number
    loras = _loras(data, problems)
    if loras:
        fields["loras"] = loras
    for key in TIMESTAMP_KEYS:
        value = data.get(key)
        if value is not None and parse_timestamp(value) is None:
            problems.append(f"{key} {_show(value)} is not a date between {YEAR_MIN} and {YEAR_MAX}")
    return fields


def _a1111_fields(text: str, problems: list[str]) -> dict[str, Any]:
    try:
        parsed = parse_a1111_parameters(text)
    except Exception:  # noqa: BLE001 - text from any tool: whatever it trips on is a problem, not a crash
        problems.append("A1111 parameters could not be parsed")
        return {}
    fields: dict[str, Any] = {}
    for field in STRING_KEYS:
        value = _clean_string(field, parsed.get(field) or "", problems)
        if value:
            fields[field] = value
    for field in NUMBER_KEYS:
        if parsed.get(field) is not None:
            number = _coerce_number(field, parsed[field], problems)
            if number is not None:
                fields[field] = number
    loras = _lora_list(parsed.get("loras") or [], problems)
    if loras:
        fields["loras"] = loras
    return fields


def _png_parameters(path: Path, problems: list[str]) -> str:
    """The `parameters` text chunk, read from the chunks before the pixel data (nothing is decoded)."""
    try:
        with PILImage.open(path) as image:
            value = image.info.get("parameters")
    except Exception:  # Pillow raises many types for broken files; the ingest judges the pixels
        problems.append("PNG text chunks could not be read")
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else ""


def _clean_string(field: str, value: Any, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{field} {_show(value)} is not text")
        return ""
    value = value.replace("\x00", "").strip()
    limit = MODEL_MAX if field == "model" else TEXT_FIELD_MAX
    if len(value) > limit:
        problems.append(f"{field} cut to {limit} characters")
        value = value[:limit]
    return value


def _coerce_number(field: str, value: Any, problems: list[str]) -> int | float | None:
    if field == "guidance_scale":
        number = _as_float(value)
        if number is None or number < 0:
            problems.append(f"{field} {_show(value)} is not a non-negative number")
        return number if number is not None and number >= 0 else None
    number = _as_int(value)
    low, high = (0, SEED_MAX) if field == "seed" else (1, INT_MAX)
    if number is None or not low <= number <= high:
        problems.append(f"{field} {_show(value)} is not an integer from {low} to {high}")
        return None
    return number


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[-+]?\d+", text):
            return int(text)
        value = _as_float(text)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _loras(data: dict[str, Any], problems: list[str]) -> tuple[dict, ...]:
    entries: list[Any] = []
    if data.get("lora") is not None:
        entries.append(data["lora"])
    value = data.get("loras")
    if isinstance(value, list):
        entries.extend(value)
    elif isinstance(value, dict) and not ({"path", "name"} & value.keys()):
        entries.extend({"name": name, "weight": weight} for name, weight in value.items())  # {"foo": 0.6}
    elif value is not None:
        entries.append(value)
    return _lora_list(entries, problems)


def _lora_list(entries: list[Any], problems: list[str]) -> tuple[dict, ...]:
    loras: list[dict] = []
    for entry in entries:
        lora = _lora(entry, problems)
        if lora is not None and all(existing["name"] != lora["name"] for existing in loras):
            loras.append(lora)
    return tuple(loras)


def _lora(entry: Any, problems: list[str]) -> dict | None:
    if isinstance(entry, str):
        name, weight = lora_name(entry), 1.0
    elif isinstance(entry, dict):
        reference = entry.get("path") or entry.get("name") or entry.get("file")
        name = lora_name(reference) if isinstance(reference, str) else ""
        raw_weight = next((entry[k] for k in ("weight", "scale", "strength") if entry.get(k) is not None), 1.0)
        weight = _as_float(raw_weight)
        if name and weight is None:
            problems.append(f"LoRA {name!r} weight {_show(raw_weight)} is not a number; LoRA dropped")
            return None
    else:
        name, weight = "", 1.0
    if not name:
        problems.append(f"LoRA entry {_show(entry, paths=False)} names no LoRA file; dropped")
        return None
    return {"name": name, "weight": weight}


def lora_name(reference: str) -> str:
    """The LoRA's file stem from a path (POSIX or Windows) or a bare name: `/x/foo.safetensors` → `foo`."""
    base = re.split(r"[\\/]", reference.strip())[-1]
    for suffix in LORA_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def _show(value: Any, *, paths: bool = True) -> str:
    """A short quoted rendering of a bad value for a problem note (never a whole path)."""
    if not paths and not isinstance(value, str | int | float):
        return f"of type {type(value).__name__}"
    if isinstance(value, str):
        if "/" in value or "\\" in value:
            value = re.split(r"[\\/]", value)[-1]
        return repr(value[:40] + ("…" if len(value) > 40 else ""))
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    return f"of type {type(value).__name__}"
