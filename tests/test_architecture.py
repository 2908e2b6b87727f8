"""The core's import graph: no cycle, counting the imports inside functions too, and a registry on the ground floor.

Every module of ``src/aekit`` is parsed with ``ast`` (never imported): each ``import aekit.x`` / ``from aekit.x
import ...`` / ``from .x import ...`` / ``from . import x`` anywhere in the file (at the top, inside a function,
under ``if TYPE_CHECKING``) is an edge; ``from . import __version__`` is an edge to the package's ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "aekit"
SOURCE = Path(__file__).resolve().parent.parent / "src" / PACKAGE
# what the registry may import from aekit: nothing but the errors (the ground floor)
GROUND_FLOOR = {"aekit.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The aekit modules `path` imports anywhere in it (the package itself for a name its ``__init__`` defines)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def add(target: str) -> None:
        while target not in known and "." in target:  # aekit.x.attr -> aekit.x
            target = target.rpartition(".")[0]
        if target in known and target != name:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if not (origin == PACKAGE or origin.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:  # `from . import io` imports the module aekit.io; `__version__` is the package's
                submodule = f"{origin}.{alias.name}"
                add(submodule if submodule in known else origin)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, colouring the modules)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_imports_inside_functions_and_the_package():
    graph = import_graph()
    assert "aekit.registry" in graph["aekit.factory"]
    assert "aekit.checkpoint" in graph["aekit.pretrained"]
    assert "aekit.loading" in graph["aekit"]  # __init__: from .loading import load
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in src/aekit (imports inside functions count): " + " -> ".join(cycle)


def test_the_registry_is_on_the_ground_floor():
    imported = import_graph()["aekit.registry"]
    assert imported <= GROUND_FLOOR, f"aekit.registry imports {sorted(imported - GROUND_FLOOR)}: it may import only errors"


def test_names_are_resolved_above_the_checkpoint_files():
    graph = import_graph()
    assert not graph["aekit.checkpoint"] & {"aekit.pretrained", "aekit.loading", "aekit.plugins"}
    assert not graph["aekit.factory"] - {"aekit.registry", "aekit.errors"}
