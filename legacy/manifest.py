"""The import manifest: every source file of a run with its outcome (and image id), as YAML."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from legacy.records import LegacyRecord


def default_manifest_path() -> Path:
    return Path(settings.DATA_DIR) / "legacy" / "manifest.yaml"


def manifest_entry(record_or_path: LegacyRecord | str, root: str = "", **fields: Any) -> dict[str, Any]:
    """One file's entry: its source (root/relative path), its album when it was placed in one, and `fields`."""
    if isinstance(record_or_path, LegacyRecord):
        return {
            "source": f"{record_or_path.root}/{record_or_path.relative_path}",
            "album": record_or_path.album_name,
            **fields,
        }
    return {"source": f"{root}/{record_or_path}", **fields}


def write_manifest(path: Path, entries: list[dict[str, Any]], *, summary: dict[str, Any] | None = None) -> None:
    """Rewrite the manifest whole, atomically: a reader never sees half a file, a crash leaves the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"summary": summary or {}, "files": entries}
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # libyaml's dumper when present: the pure-Python one costs more than the import itself.
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            yaml.dump(document, handle, Dumper=dumper, allow_unicode=True, sort_keys=False, width=120)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
