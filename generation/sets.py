"""Set templates: the prompt rule users rely on, and importing sets in the earlier format."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from albums.models import Album, AlbumType

TEMPLATE_FIELDS = (
    "description",
    "base_prompt",
    "prompt_template",
    "style_suffix",
    "example_theme",
    "width",
    "height",
    "negative_prompt",
)


def render_template(prompt_template: str, row: dict[str, Any]) -> str:
    """Fill `{column}` placeholders from the row; placeholders with no such column stay as written."""
    text = prompt_template
    for column, value in row.items():
        text = text.replace("{" + str(column) + "}", "" if value is None else str(value))
    return text


def render_set_prompt(template: Album, row: dict[str, Any], theme: str) -> str:
    """base_prompt. Art style: <theme>. <rendered template>. style_suffix — empty parts left out."""
    parts = [
        template.base_prompt.strip(),
        f"Art style: {theme.strip()}" if theme and theme.strip() else "",
        render_template(template.prompt_template, row).strip(),
        template.style_suffix.strip(),
    ]
    return ". ".join(part for part in parts if part)


def join_negative_prompts(*prompts: str) -> str:
    return ", ".join(p.strip() for p in prompts if p and p.strip())


def item_label(row: dict[str, Any]) -> str:
    """A short name for a row in reports (the earlier implementation's item-name rule)."""
    if row.get("value") and row.get("suit"):
        return f"{row['value']} of {row['suit']}"
    for column in ("name", "card", "sign"):
        if row.get(column):
            return str(row[column])
    return str(next(iter(row.values()), "")) if row else ""


class SetFormatError(ValueError):
    """A set's CSV or YAML is malformed; the message names the file and line."""


def parse_items_csv(text: str, *, source: str = "CSV") -> list[dict[str, str]]:
    """CSV text → list of row objects. Every row must have exactly the header's columns."""
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [row for row in reader]
    except csv.Error as exc:
        raise SetFormatError(f"{source}, line {reader.line_num}: {exc}") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise SetFormatError(f"{source}: no header row.")
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header) or len(set(header)) != len(header):
        raise SetFormatError(f"{source}, line 1: column names must be non-empty and distinct.")
    items = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise SetFormatError(f"{source}, line {line_no}: expected {len(header)} columns, found {len(row)}.")
        items.append({column: cell.strip() for column, cell in zip(header, row, strict=True)})
    if not items:
        raise SetFormatError(f"{source}: the header has no rows under it.")
    return items


def items_to_csv(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(items[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(items)
    return out.getvalue()


@dataclass
class SetImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _template_values(key: str, entry: dict[str, Any], items: list[dict[str, str]]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": str(entry.get("name") or key.replace("_", " ").title()),
        "is_set_template": True,
        "album_type": AlbumType.SET,
        "template_items": items,
        "loras": [dict(lora) for lora in entry.get("loras") or [] if isinstance(lora, dict)],
    }
    for name in TEMPLATE_FIELDS:
        value = entry.get(name)
        if name in ("width", "height"):
            values[name] = int(value) if value not in (None, "") else None
        else:
            values[name] = "" if value is None else str(value)
    return values


def import_sets(config_path: Path) -> SetImportReport:
    """Import every set of an earlier-format `config.yaml` as a set-template album.

    A set is found again by its key (album slug `set-<key>`), so a second run changes nothing.
    A set whose YAML entry or CSV is malformed is reported and nothing of it is imported.
    """
    report = SetImportReport()
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        report.errors.append(f"{config_path.name}{line}: {getattr(exc, 'problem', None) or exc}")
        return report
    except OSError as exc:
        report.errors.append(f"{config_path.name}: cannot be read ({exc.strerror}).")
        return report
    if not isinstance(config, dict):
        report.errors.append(f"{config_path.name}: expected a mapping of set keys to settings.")
        return report
    for key, entry in config.items():
        try:
            if not isinstance(entry, dict):
                raise SetFormatError(f"{config_path.name}: set '{key}' must be a mapping.")
            if not entry.get("prompt_template"):
                raise SetFormatError(f"{config_path.name}: set '{key}' has no prompt_template.")
            csv_name = entry.get("csv_path") or f"{key}.csv"
            csv_file = (config_path.parent / csv_name).resolve()
            if config_path.parent.resolve() not in csv_file.parents:
                raise SetFormatError(f"{config_path.name}: set '{key}' csv_path leaves the sets folder.")
            try:
                text = csv_file.read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise SetFormatError(f"{csv_name}: cannot be read ({exc.strerror}).") from exc
            items = parse_items_csv(text, source=csv_name)
            values = _template_values(str(key), entry, items)
        except (SetFormatError, ValueError, TypeError) as exc:
            report.errors.append(f"set '{key}': {exc}")
            continue
        slug = f"set-{key}".replace("_", "-").lower()
        with transaction.atomic():
            album = Album.objects.filter(slug=slug).first()
            if album is None:
                Album.objects.create(slug=slug, is_public=True, **values)
                report.created.append(str(key))
            elif all(getattr(album, name) == value for name, value in values.items()):
                report.unchanged.append(str(key))
            else:
                for name, value in values.items():
                    setattr(album, name, value)
                album.save()
                report.updated.append(str(key))
    return report
