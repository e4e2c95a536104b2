"""Every write to a job row goes through the lifecycle (imagineer/core/jobs.py), where it is claim-checked.

A `FooJob.objects.filter(...).update(...)` anywhere else could be a reaped worker's late write
over its retry's row; docs/JOBS.md says to use update_job / record_progress instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from imagineer.core.jobs import job_models

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("imagineer", "albums", "generation", "labeling", "training", "legacy")
LIFECYCLE = ROOT / "imagineer" / "core" / "jobs.py"
QUERYSET_WRITES = {"update", "bulk_update"}


def _manager_owner(node: ast.AST) -> str | None:
    """`ThumbnailJob` in `ThumbnailJob.objects.filter(...).exclude(...)`, whatever the chain."""
    while isinstance(node, ast.Call | ast.Attribute):
        if isinstance(node, ast.Attribute) and node.attr in ("objects", "_base_manager", "_default_manager"):
            return node.value.id if isinstance(node.value, ast.Name) else None
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def job_row_writes(source: str, job_model_names: set[str]) -> list[int]:
    """Line numbers of queryset writes (update, bulk_update) on a job model's manager."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERYSET_WRITES
            and _manager_owner(node.func.value) in job_model_names
        ):
            lines.append(node.lineno)
    return lines


def test_no_job_row_is_written_outside_the_lifecycle():
    names = {model.__name__ for model in job_models()}
    assert {"ThumbnailJob", "GenerationJob", "SetRun", "TrainingRun", "ScrapeJob", "ImportRun"} <= names
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == LIFECYCLE or "migrations" in path.parts:
                continue
            found += [f"{path.relative_to(ROOT)}:{line}" for line in job_row_writes(path.read_text(), names)]
    assert found == [], "write these through imagineer.core.jobs.update_job / record_progress"


def test_the_check_sees_a_plain_update_and_a_chained_one():
    source = (
        "def late(run):\n"
        "    SetRun.objects.filter(pk=run.pk).update(completed_items=3)\n"
        "    ImportRun.objects.filter(status='running').exclude(pk=1).update(status='failed')\n"
        "    Album.objects.filter(pk=1).update(name='fine: not a job row')\n"
    )
    assert job_row_writes(source, {"SetRun", "ImportRun"}) == [2, 3]
