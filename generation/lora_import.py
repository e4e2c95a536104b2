"""Importing a LoRA folder in the earlier layout.

    <dir>/index.json                         optional: {key: {folder, filename, default_weight, friendly_name, ...}}
    <dir>/<folder>/<file>.safetensors
    <dir>/<folder>/config.yaml               optional: name, default_weight, notes, trigger_words
    <dir>/_incompatible/...                  skipped (the earlier organiser's rejects)

Each file is checked from its safetensors header (never loaded); files that are not an SD LoRA for
a family we support are reported and skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generation.models import LoraProvenance
from generation.registry import InvalidLora, register_lora

VERSION_SUFFIX = re.compile(r"([-_ ]?(v\d+(\.\d+)?|\d{3,}))+$", re.IGNORECASE)


def trigger_phrase(filename: str) -> str:
    """The earlier implementation's trigger-word rule: `Card_Fronts-000008` → `card fronts`."""
    stem = Path(filename).stem
    stem = VERSION_SUFFIX.sub("", stem)
    stem = re.sub(r"[_\-]+", " ", stem)
    stem = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)
    return re.sub(r"\s+", " ", stem).strip().lower()


@dataclass
class LoraImportReport:
    imported: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def _index_entries(root: Path, report: LoraImportReport) -> dict[str, dict[str, Any]]:
    index_file = root / "index.json"
    if not index_file.is_file():
        return {}
    try:
        raw = json.loads(index_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError) as exc:
        report.skipped.append(("index.json", f"unreadable, ignored ({type(exc).__name__})"))
        return {}
    entries = raw.values() if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    return {str(e.get("filename")): e for e in entries if isinstance(e, dict) and e.get("filename")}


def import_lora_folder(root: Path) -> LoraImportReport:
    report = LoraImportReport()
    index = _index_entries(root, report)
    for path in sorted(root.glob("*/*")):
        folder = path.parent.name
        if folder.startswith("_") or not path.is_file() or path.name in ("config.yaml", "preview.png"):
            continue
        label = f"{folder}/{path.name}"
        if path.suffix.lower() != ".safetensors":
            if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin", ".pkl"):
                report.skipped.append(
                    (label, "pickled weights are refused (they can run code); convert to .safetensors")
                )
            continue
        config: dict[str, Any] = {}
        config_file = path.parent / "config.yaml"
        if config_file.is_file():
            try:
                loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
                config = loaded if isinstance(loaded, dict) else {}
            except yaml.YAMLError:
                report.skipped.append((f"{folder}/config.yaml", "unreadable, defaults used"))
        entry = index.get(path.name, {})
        name = str(config.get("name") or entry.get("friendly_name") or folder.replace("_", " ").title())
        weight = config.get("default_weight", entry.get("default_weight", 0.6))
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            weight = 0.6
        trigger = config.get("trigger_words") or trigger_phrase(path.name)
        if isinstance(trigger, list):
            trigger = ", ".join(str(t) for t in trigger)
        try:
            _, created = register_lora(
                path,
                name=name,
                trigger_words=str(trigger),
                default_weight=weight,
                provenance=LoraProvenance.IMPORTED,
                source_note=f"imported from folder '{folder}'",
            )
        except InvalidLora as exc:
            report.skipped.append((label, exc.message))
            continue
        (report.imported if created else report.already_present).append(label)
    return report
