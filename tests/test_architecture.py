"""The package's import graph: no cycles among sgdlab modules, function-level imports only in
the command line (where they keep ``sgdlab --help`` fast), small modules.

The graph is read from the source (an AST walk), with every import counted wherever it
stands — at module level or inside a function — except those under ``if TYPE_CHECKING:``
(annotations only, never executed). ``from a.b import c`` points at ``a.b.c`` when that is a
module, else at ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "sgdlab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(target module, line, at function level)`` for every executed sgdlab import."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    root = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*root, base] if base else root)
                names = [f"{base}.{a.name}" for a in child.names]
            else:
                visit(child, nested)
                continue
            for name in names:
                target = _resolve(name)
                if target and target != module:
                    out.append((target, child.lineno, in_function))

    visit(tree, False)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in {t for t, _, _ in GRAPH[v]}:
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return found


def test_the_graph_is_read():
    # a sanity check that the walk sees real edges (a broken walk would find no cycle)
    assert any(t == "sgdlab.config" for t, _, _ in GRAPH["sgdlab.engine.plan"])
    assert any(t == "sgdlab.store" for t, _, _ in GRAPH["sgdlab.api"])
    assert len(MODULES) > 60


def test_cycle_detection_catches_a_cycle(monkeypatch):
    monkeypatch.setitem(GRAPH, "sgdlab.rng", [*GRAPH["sgdlab.rng"], ("sgdlab.api", 1, True)])
    assert any("sgdlab.rng" in c and "sgdlab.api" in c for c in _cycles())


def test_no_import_cycles():
    assert _cycles() == []


def test_function_level_imports_only_in_the_cli():
    """Inside functions, sgdlab is imported only by the command line, where it keeps
    `sgdlab --help` from loading torch (see sgdlab.cli.app)."""
    offenders = [
        f"{m}:{line} imports {t}"
        for m, edges in GRAPH.items()
        for t, line, in_function in edges
        if in_function and not m.startswith("sgdlab.cli")
    ]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    assert len(MODULES[module].read_text().splitlines()) <= 400


def test_lazy_package_root_matches_its_type_checking_imports():
    """``sgdlab.__init__`` names each lazily imported object twice (the ``_LAZY`` table and
    the ``TYPE_CHECKING`` imports that static tools read): the two must agree, and every
    public name must resolve to the object of its module."""
    import importlib

    import sgdlab

    tree = ast.parse((PKG / "__init__.py").read_text())
    declared = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                declared.update({a.name: imp.module for a in imp.names})
    assert declared == sgdlab._LAZY
    for name in sgdlab.__all__:
        obj = getattr(sgdlab, name)
        if name in declared:
            assert obj is getattr(importlib.import_module(declared[name]), name)
    with pytest.raises(AttributeError, match="no attribute"):
        sgdlab.not_a_name  # noqa: B018


def test_import_sgdlab_and_the_cli_do_not_load_torch():
    import subprocess
    import sys

    code = (
        "import sys, sgdlab, sgdlab.cli; "
        "print(sorted(m for m in ('torch', 'scipy', 'duckdb', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
