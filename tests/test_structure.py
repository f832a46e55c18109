"""The package's structure: no import loop, and every module importable on its own."""

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import videoprism_keras

PACKAGE = Path(videoprism_keras.__file__).parent
NAME = "videoprism_keras"


def _modules() -> dict:
    """Every module of the package, by dotted name → its file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict) -> set:
    """The package's modules that `name` imports anywhere in its source, at module level
    or inside a function (a loop through a deferred import is still a loop)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from . import saving` names a module; `from .x import y` names x.
            targets = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            targets = targets or [base]
        else:
            continue
        edges |= {t for t in targets if t in modules and t != name}
    return edges


def _cycle(graph: dict) -> list:
    """One import cycle of `graph` as a list of modules, or [] if there is none."""
    state: dict = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*trail, nxt])
                if found:
                    return found
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return []


def test_the_import_graph_has_no_loop():
    modules = _modules()
    # A parent package is imported before its children anyway: that edge is no loop.
    graph = {
        name: {t for t in _imports(name, path, modules) if not name.startswith(f"{t}.")}
        for name, path in modules.items()
    }
    assert len(graph) > 20 and graph[f"{NAME}.saving"]  # the scan found the package
    assert _cycle(graph) == []


def test_the_loop_detector_finds_a_loop():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_every_module_imports_alone_in_a_fresh_interpreter():
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}

    def import_alone(name):
        out = subprocess.run([sys.executable, "-c", f"import {name}"], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        return name, out.returncode, out.stderr[-600:]

    with ThreadPoolExecutor(2) as pool:
        failed = [r for r in pool.map(import_alone, sorted(_modules())) if r[1] != 0]
    assert failed == []
