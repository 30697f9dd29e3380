"""The package's import graph: no cycles, and layers that only point down.

Read from the source (``ast``), imports inside functions included: a function-level import is
still a dependency, only a later one. ``if TYPE_CHECKING:`` blocks are left out (annotations
only). Layers, lowest first; a module may import its own layer and the ones below:

0. core: settings, storage, errors, SQL, metrics, the actor specs and the cluster session;
1. registry and features;
2. training, serving, monitoring (what models and data go through);
3. continuous training (it drives training, serving and monitoring);
4. the surface: the CLI, the demo, the status report, the package's facade, the example data.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "raymlops"

# module prefix -> layer; the longest matching prefix wins
LAYERS: dict[str, int] = {
    "raymlops._": 0, "raymlops.config": 0, "raymlops.exceptions": 0, "raymlops.storage": 0,
    "raymlops.sql": 0, "raymlops.shared_state": 0, "raymlops.tabular_input": 0,
    "raymlops.staged_output": 0, "raymlops.platform": 0, "raymlops.cluster": 0,
    "raymlops.metrics": 0, "raymlops.data_schema": 0,
    "raymlops.registry": 1, "raymlops.features": 1,
    "raymlops.training": 2, "raymlops.serving": 2, "raymlops.monitoring": 2,
    "raymlops.ct": 3,
    "raymlops.cli": 4, "raymlops.demo": 4, "raymlops._status": 4, "raymlops.datasets": 4,
}
FACADE = "raymlops"  # the package's __init__: re-exports, the top of everything


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(module: str, path: Path, node: ast.AST, mods: dict[str, Path]) -> list[str]:
    """Modules ``node`` imports: ``from a import b`` is module ``a.b`` if there is one, else ``a``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".")
            if path.name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    return []


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            for target in _imported(module, path, node, mods):
                if target == "raymlops" or target.startswith("raymlops."):
                    found = resolve(target)
                    if found and found != module:
                        graph[module].add(found)
    return graph


def layer_of(module: str) -> int:
    if module == FACADE:
        return max(LAYERS.values())
    # "raymlops._" covers the private core modules; other prefixes cover a module or package
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")
               or (p.endswith("_") and module.startswith(p))]
    best = max(matches, key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return LAYERS[best]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle_and_a_layer_breach() -> None:
    graph = {"raymlops.a": {"raymlops.b"}, "raymlops.b": {"raymlops.c"}, "raymlops.c": {"raymlops.a"},
             "raymlops.d": set()}
    assert cycles(graph) == [["raymlops.a", "raymlops.b", "raymlops.c"]]
    assert layer_of("raymlops.registry.client") == 1 and layer_of("raymlops._head") == 0
    assert layer_of("raymlops._status") == 4 and layer_of("raymlops") == 4


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_import_cycle(graph) -> None:
    assert cycles(graph) == []


def test_imports_only_point_down(graph) -> None:
    breaches = sorted(f"{m} ({layer_of(m)}) imports {t} ({layer_of(t)})"
                      for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert breaches == []
