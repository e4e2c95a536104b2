"""Pluggable labelers, chosen by name; the runtime config's `labeling.labeler` (default `auto`, or
the `IMAGINEER_LABELER` setting) picks the default.

`auto` means Claude whenever ANTHROPIC_API_KEY is set, else the offline NudeNet detector, so a
fresh install can flag NSFW images with no key.
"""

from __future__ import annotations

from django.conf import settings

from imagineer.core.runtime_config import get_runtime_config
from labeling.labelers.base import Labeler, LabelerUnavailable, LabelingFailed, LabelResult
from labeling.models import LabelerName


def default_labeler_name() -> str:
    configured = get_runtime_config().labeling.labeler
    if configured != "auto":
        return configured
    return LabelerName.CLAUDE if settings.ANTHROPIC_API_KEY else LabelerName.NUDENET


def check_labeler(name: str) -> str:
    """The labeler's name when it can run here; LabelerUnavailable saying why otherwise."""
    if name not in LabelerName.values:
        raise LabelerUnavailable(
            f"Unknown labeler '{name}'; choose one of {', '.join(LabelerName.values)}.", code="unknown_labeler"
        )
    if name == LabelerName.CLAUDE and not settings.ANTHROPIC_API_KEY:
        raise LabelerUnavailable(
            "The Claude labeler needs ANTHROPIC_API_KEY on the server; set it, or use the local 'nudenet' labeler."
        )
    return name


def build_labeler(name: str) -> Labeler:
    check_labeler(name)
    if name == LabelerName.CLAUDE:
        from labeling.labelers.claude import ClaudeLabeler

        return ClaudeLabeler()
    from labeling.labelers.nudenet import NudeNetLabeler

    return NudeNetLabeler()


def labeler_source_model(name: str) -> str:
    """The model a labeler of this name uses now (recorded on runs and labels)."""
    if name == LabelerName.CLAUDE:
        return get_runtime_config().labeling.claude_model
    from labeling.labelers.nudenet import NudeNetLabeler

    return NudeNetLabeler.source_model


__all__ = [
    "LabelResult",
    "Labeler",
    "LabelerUnavailable",
    "LabelingFailed",
    "build_labeler",
    "check_labeler",
    "default_labeler_name",
    "labeler_source_model",
]
