"""The layers hold: no import cycle between modules, nothing imports upward (docs/architecture.md).

The graph is built from the source with `ast`, so it sees every import: at module level, inside
functions and under `if TYPE_CHECKING:`. `from pkg import name` is an edge to `pkg.name` when that
is a module, to `pkg` otherwise.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("tasks", "subtasks", "analysis")
PACKAGES = ("vias", *APPS)

LIB, MODELS, CORE, ENGINE, EDGE = range(5)
LAYER_NAMES = ["vias/lib", "models", "core services", "analysis engine", "edges"]
# Modules of an app below its services: what the models need, and nothing that writes.
MODEL_MODULES = {"models", "choices", "constants", "validators", "xmlformats", "videostore"}
# The app parts that are edges whatever app they are in.
EDGE_PARTS = {"api", "admin", "management", "apps", "widgets"}


def layer_of(module: str) -> int:
    """vias/lib -> models/choices -> core services -> analysis engine -> edges."""
    parts = module.split(".")
    if parts[0] == "vias":
        return LIB if parts[1:2] == ["lib"] else EDGE
    if len(parts) == 1:
        return MODELS  # an app's package __init__ holds nothing but its name
    if parts[1] in EDGE_PARTS:
        return EDGE
    if parts[1] in MODEL_MODULES:
        return MODELS
    return ENGINE if parts[0] == "analysis" else CORE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts and "tests" not in path.parts:
                yield path


def imported_names(tree: ast.AST, modules: set[str]) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                yield (dotted if dotted in modules else node.module), node.lineno


def owning_module(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported first-party module: line of the first such import}."""
    paths = {module_name(path): path for path in source_files()}
    modules = set(paths)
    graph: dict[str, dict[str, int]] = {}
    for module, path in paths.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(ast.parse(path.read_text(), str(path)), modules):
            target = owning_module(name, modules) if name.split(".")[0] in PACKAGES else None
            if target and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.get(child, {}))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    return [
        f"{module} ({LAYER_NAMES[layer_of(module)]}) line {line} imports "
        f"{target} ({LAYER_NAMES[layer_of(target)]})"
        for module, edges in sorted(graph.items())
        for target, line in sorted(edges.items())
        if layer_of(target) > layer_of(module)
    ]


def test_the_graph_sees_imports_inside_functions_and_packages():
    graph = import_graph()
    # A sanity check on the builder itself: these edges exist in the code in some form.
    assert "tasks.models" in graph["subtasks.models"]
    assert len(graph) > 60


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_nothing_imports_upward():
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {
        "tasks.services": {"analysis.dispatch": 3},
        "analysis.dispatch": {"tasks.services": 5},
        "vias.lib.api": {"tasks.models": 1},
    }
    assert cycles(graph) == [["analysis.dispatch", "tasks.services"]]
    assert upward_imports(graph) == [
        "tasks.services (core services) line 3 imports analysis.dispatch (analysis engine)",
        "vias.lib.api (vias/lib) line 1 imports tasks.models (models)",
    ]


def test_the_lib_imports_no_app():
    graph = import_graph()
    lib = {module: edges for module, edges in graph.items() if module.startswith("vias.lib")}
    assert lib
    assert {target for edges in lib.values() for target in edges if target.split(".")[0] in APPS} == set()
