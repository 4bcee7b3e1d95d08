"""The engine's shape, read from its own import statements (those inside functions too): no
import cycle between modules of lesion_core, no private name used outside its module, and no
module of lesion_core or app_pages over 600 lines. lint-imports (.importlinter, run by .ci/run)
checks the layers; this checks what a layers contract cannot see: cycles inside one layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], list[str]]:
    """({module: modules of the package it imports, anywhere in its code}, private names used
    across modules as "file:line name") for the package folder root/package."""
    modules = {module_name(root, p): p for p in (root / package).rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {m: set() for m in modules}
    private = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [(owner(a.name), None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                targets = [(f"{base}.{a.name}", None) if f"{base}.{a.name}" in modules else (owner(base), a.name)
                           for a in node.names]
            else:
                continue
            for target, name in targets:
                if target is None or target == mod:
                    continue
                edges[mod].add(target)
                # (_ alone is gettext's translator, by convention imported everywhere)
                if name and name.startswith("_") and not name.startswith("__") and name != "_":
                    private.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_lesion_core_has_no_import_cycle_even_through_imports_inside_functions():
    edges, _private = import_graph(REPO, "lesion_core")
    assert cycles(edges) == []


def test_the_cycle_check_sees_a_cycle_hidden_inside_a_function(tmp_path):
    """The check itself: a cycle made by an import inside a function is found."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def late():\n    from pkg.c import thing\n    return thing\n")
    (package / "c.py").write_text("import pkg.a\n\nthing = 1\n")
    edges, _ = import_graph(tmp_path, "pkg")
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_no_private_name_is_used_outside_its_module():
    found = []
    for package in ("lesion_core", "app_pages"):
        found += import_graph(REPO, package)[1]
    assert found == []


def test_no_module_of_the_engine_or_the_pages_is_over_600_lines():
    long = {str(p.relative_to(REPO)): n for package in ("lesion_core", "app_pages")
            for p in (REPO / package).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
