"""Plain records passed between the legacy-import stages (collect → stage → ingest).

Nothing here touches the database or the file system; the collectors build these and the
stager, manifest and ingest consume them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ImageMetadata:
    """Generation fields read from a sidecar or an A1111 chunk, plus a caption."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    # Each {"name": str, "weight": float}; name is the LoRA file's stem.
    loras: tuple[dict, ...] = ()
    # From a .txt beside the image (reference packs), whitespace-collapsed, at most 1000 chars.
    caption: str = ""
    # Where the generation fields came from: "sidecar" | "a1111" | "".
    source: str = ""
    # Human-readable notes about dropped or unreadable values; never contain paths.
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class LegacyRecord:
    """One image found in a legacy root, with the album it belongs to."""

    source_path: Path
    root: str
    relative_path: str
    category: str
    album_key: str
    album_name: str
    album_slug: str
    album_type: str
    album_private: bool
    album_description: str
    timestamp: datetime
    timestamp_source: str  # metadata | filename | mtime | known (stored by an earlier run)
    size: int
    mtime_ns: int
    metadata: ImageMetadata
    # The companion files found beside the image (None when there was none), usable or not; the stager may copy them.
    sidecar_path: Path | None = None
    caption_path: Path | None = None


@dataclass(frozen=True)
class SkippedFile:
    """A file the collector saw and did not turn into a record, with the reason why."""

    relative_path: str
    root: str
    reason: str


@dataclass
class Collection:
    """What one collect() run found."""

    records: list[LegacyRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    orphan_sidecars: list[SkippedFile] = field(default_factory=list)  # reason: ORPHAN_SIDECAR
