"""No import cycles between snnrun's modules.

Every module of the package is parsed (not imported) with ``ast``; each ``import`` and
``from ... import`` anywhere in it (module level or inside a function) is an edge to the snnrun
module it names. ``from snnrun.x import y`` is an edge to ``snnrun.x.y`` when y is a submodule,
else to ``snnrun.x`` (a package's ``__init__``). Cycles are the strongly connected components
of that graph with more than one module (or a module importing itself).
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import snnrun

PACKAGE = "snnrun"


def module_files() -> dict[str, Path]:
    """Every snnrun module -> its source file (packages by their ``__init__.py``)."""
    root = Path(snnrun.__file__).parent
    files = {PACKAGE: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix=f"{PACKAGE}."):
        rel = Path(*info.name.split(".")[1:])
        files[info.name] = root / rel / "__init__.py" if info.ispkg else root / rel.with_suffix(".py")
    return files


def is_package(files: dict[str, Path], name: str) -> bool:
    return files[name].name == "__init__.py"


def imported_modules(name: str, files: dict[str, Path]) -> set[str]:
    """The snnrun modules ``name`` imports, anywhere in its source."""
    tree = ast.parse(files[name].read_text(), filename=str(files[name]))
    here = name if is_package(files, name) else name.rpartition(".")[0]  # relative imports start here
    out: set[str] = set()

    def add(mod: str) -> None:
        # `import snnrun.a.b` also runs snnrun.a's __init__, but the edge that matters is to the
        # module named; walk up to the nearest one that exists (attributes of a module: itself)
        while mod and mod not in files:
            mod = mod.rpartition(".")[0]
        if mod:
            out.add(mod)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(f"{PACKAGE}."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not (mod == PACKAGE or mod.startswith(f"{PACKAGE}.")):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(sub if sub in files else mod)
    out.discard(name)  # `from snnrun.x import y` inside snnrun.x itself: not an edge
    return out


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, files) for name in sorted(files)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan), each sorted, listed sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (~70)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(comp: list[str], graph: dict[str, set[str]]) -> str:
    members = set(comp)
    edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a] & members)]
    return f"{{{', '.join(comp)}}}: " + "; ".join(edges)


def test_graph_sees_relative_function_level_and_submodule_imports():
    graph = import_graph()
    # snnrun/cli.py imports snnrun.engine.loop inside functions only
    assert "snnrun.engine.loop" in graph["snnrun.cli"]
    # `from snnrun.components.learning import gradient` in the learning package's __init__
    assert "snnrun.components.learning.gradient" in graph["snnrun.components.learning"]
    # `from snnrun.components.neurons import NeuronModel` names the package (its __init__)
    assert "snnrun.components.neurons" in graph["snnrun.commands.probe"]


def test_cycle_finder():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert cycles(g) == [["a", "b", "c"], ["d"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n  " + "\n  ".join(describe(c, graph) for c in found)
