"""The packages import one way (cli -> loop -> trainer/evals -> ... -> ground floor), with no cycle.

Read from the source with :mod:`ast`, so the test sees every import, lazy ones included, without
running any of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curator", "trainer", "evals")

#: Lowest first.  A module may import modules of its own layer or of a lower one, never a higher one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground floor", ("curator", "curator.errors", "curator.records", "curator.workspace", "curator.migrations",
                      "curator.output", "curator.progress", "curator.html",
                      "curator.yamlfile")),
    ("models and llm", ("curator.models", "curator.embed", "curator.llm")),
    ("data", ("curator.data",)),
    ("quality", ("curator.quality",)),
    ("synth and feedback", ("curator.synth", "curator.feedback")),
    ("snapshots", ("curator.snapshots", "curator.stats", "curator.engines")),
    ("trainer and evals", ("trainer", "evals")),
    ("loop, serve, review", ("curator.loop", "curator.serve", "curator.review")),
    ("cli", ("curator.cli", "curator.__main__")),
]


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at module level, line) for every import of the project's packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    # imports under `if TYPE_CHECKING:` at module level run only for the type checker
    type_only = {id(n) for stmt in tree.body if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
                 for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                     if f"{node.module}.{a.name}" in MODULES]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((name, id(node) in top, node.lineno))
    return found


def _layer(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def test_no_relative_imports_and_every_module_in_a_layer() -> None:
    for name, path in MODULES.items():
        _layer(name)
        rel = [n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
        assert not rel, f"{path.relative_to(ROOT)}:{rel[0]}: relative import (the project uses absolute imports)"


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for name, path in MODULES.items():
        for target, _, line in _imports(path):
            if target in MODULES and _layer(target) > _layer(name):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {name} ({LAYERS[_layer(name)][0]}) imports "
                             f"{target} ({LAYERS[_layer(target)][0]})")
    assert not wrong, "imports that point up:\n" + "\n".join(wrong)


def test_no_module_level_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, at_top, _ in _imports(path):
            if at_top and target in MODULES and target != name:
                graph[name].add(target)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            # a package importing its own submodules (re-exports) is not a cycle of modules
            if len(comp) > 1 and not all(c.startswith(min(comp, key=len) + ".") or c == min(comp, key=len)
                                         for c in comp):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "module-level import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
