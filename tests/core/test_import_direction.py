"""Dependencies point one way (docs/ARCHITECTURE.md), and no module imports itself round a circle.

The floors, bottom up: imagineer/core (with the project's settings and Celery app) ← albums ←
generation, labeling ← training, legacy, imagineer/ops; imagineer/urls.py mounts them all. A module
may import its own app and the floors below it, never one beside or above it — not even lazily
inside a function: every import statement in the source counts, wherever it stands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("imagineer", "albums", "generation", "labeling", "training", "legacy")

FLOORS = {"core": 0, "albums": 1, "generation": 2, "labeling": 2, "training": 3, "legacy": 3, "ops": 3, "urls": 4}


def app_of(module: str) -> str:
    """The app (floor name) a dotted module belongs to."""
    if module.startswith("imagineer.ops"):
        return "ops"
    if module == "imagineer.urls":
        return "urls"
    if module == "imagineer" or module.startswith("imagineer."):
        return "core"  # imagineer.core and the configuration: settings, the Celery app, wsgi/asgi
    return module.split(".")[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(module: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """Every project module that `source` imports, at any depth of the syntax tree."""

    def nearest_known(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(filter(None, (nearest_known(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                # `from albums import services` imports the module albums.services.
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else nearest_known(base)
                if target:
                    found.add(target)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {
        name: imported_modules(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
        for name, path in modules.items()
    }


def wrong_way_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = app_of(module), app_of(target)
            if here != there and FLOORS[there] >= FLOORS[here]:
                problems.append(f"{module} ({here}) imports {target} ({there})")
    return problems


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(project_modules())


def test_every_app_module_is_seen(graph):
    assert {app_of(module) for module in graph} == set(FLOORS)
    assert "albums.admin" in graph and "imagineer.core.jobs" in graph and "training.tasks" in graph


def test_no_app_imports_one_beside_or_above_it(graph):
    assert wrong_way_imports(graph) == []


def test_no_import_cycles_between_modules(graph):
    assert import_cycles(graph) == []


def test_the_check_catches_an_albums_to_generation_import(graph):
    """Re-adding the old `albums → generation` import (even a lazy one) fails the check above."""
    known = set(graph)
    lazy = "def start(album):\n    from generation import services\n    return services.start_set_run(album)\n"
    readded = {"albums.admin": imported_modules("albums.admin", lazy, False, known)}
    assert wrong_way_imports(readded) == ["albums.admin (albums) imports generation.services (generation)"]


def test_the_check_resolves_relative_imports_and_catches_core_importing_an_app(graph):
    known = set(graph)
    assert imported_modules("imagineer.core.x", "from . import jobs\n", False, known) == {"imagineer.core.jobs"}
    found = imported_modules("imagineer.core.x", "import labeling.models\n", False, known)
    assert wrong_way_imports({"imagineer.core.x": found}) == [
        "imagineer.core.x (core) imports labeling.models (labeling)"
    ]


def test_the_check_catches_a_cycle():
    graph = {"albums.a": {"albums.b"}, "albums.b": {"albums.c"}, "albums.c": {"albums.a"}, "albums.d": {"albums.a"}}
    assert import_cycles(graph) == [["albums.a", "albums.b", "albums.c"]]
