"""The package's import structure (issue 14): no import cycle anywhere under ``src/``, no
module imports the CLI but its entry point, and the lab is never imported at run time.

An AST walk over the source, so lazy imports (inside functions) count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "tracestop"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PKG).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The most specific module of ours that ``name`` (a module or module.attribute) names."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(mod: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base]) if base else ".".join(pkg)
            names = [f"{base}.{a.name}" for a in node.names]
        for n in names:
            if n == PKG or n.startswith(PKG + "."):
                target = _resolve(n, modules)
                if target is not None and target != mod:
                    found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n):], n]
            if n not in state and (c := visit(n)) is not None:
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)) is not None:
            return c
    return None


def test_the_walk_sees_imports() -> None:
    graph = _graph()
    assert "tracestop.tag.linear" in graph["tracestop.tag"]
    assert "tracestop.cli" in graph["tracestop.__main__"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    assert _cycle(_graph()) is None


def test_only_the_entry_point_imports_the_cli() -> None:
    bad = sorted(m for m, deps in _graph().items()
                 if not m.startswith(f"{PKG}.cli") and m != f"{PKG}.__main__"
                 and any(d == f"{PKG}.cli" or d.startswith(f"{PKG}.cli.") for d in deps))
    assert bad == []


def test_the_lab_is_not_imported_at_run_time() -> None:
    """Only the lab itself and ``tracestop tag --report`` (lazily) import ``tracestop.lab``."""
    bad = sorted(m for m, deps in _graph().items()
                 if not m.startswith(f"{PKG}.lab") and m != f"{PKG}.cli.tag"
                 and any(d == f"{PKG}.lab" or d.startswith(f"{PKG}.lab.") for d in deps))
    assert bad == []
