"""The package's structure: no import loop, every module importable on its own, small
modules, and no private name imported across modules."""

import ast
import multiprocessing
import os
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


def test_every_module_imports_alone_in_a_fresh_interpreter(monkeypatch):
    from import_alone import import_alone

    modules = sorted(_modules())
    # `import a.b.c` first imports `a.b` exactly as `import a.b` alone would (only its
    # parents before it): a package with a module of its own is covered by that module.
    alone = [m for m in modules if not any(n.startswith(f"{m}.") for n in modules)]
    assert f"{NAME}.model.backbone" in alone and f"{NAME}.model" not in alone
    # Each import in a process of its own (one task per process), forked from a server
    # that has imported Keras (on the backend under test) and nothing of ours.
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "jax"))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["keras"])
    with context.Pool(min(4, os.cpu_count() or 1), maxtasksperchild=1) as pool:
        failed = [r for r in pool.map(import_alone, alone, chunksize=1) if r[1] is not None]
    assert failed == []


def test_an_import_that_fails_alone_is_reported(tmp_path, monkeypatch):
    from import_alone import import_alone

    (tmp_path / "needs_order.py").write_text("import json\njson.not_there\n")
    monkeypatch.syspath_prepend(tmp_path)
    name, error = import_alone("needs_order")
    assert name == "needs_order" and "AttributeError" in error


# Issue 24's rules: a module a newcomer reads in one sitting, and private names kept private.
LINE_LIMIT = 600


def test_no_module_is_over_600_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in lengths.items() if n > LINE_LIMIT} == {}


def _private_imports(name: str, path: Path, modules: dict) -> list:
    """`from .x import _y` in `name`: a private name of another module (a private module
    of the package, `from . import _backend`, is the package's own business)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        if not base.startswith(NAME):
            continue  # the rule is about our own modules
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and f"{base}.{alias.name}" not in modules:
                found.append(f"{name}: from {base} import {alias.name}")
    return found


def test_the_private_import_finder_finds_one(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from .a import _b, c\nfrom . import _mod\nfrom os import _exit\n")
    modules = {f"{NAME}.m": path, f"{NAME}._mod": path}
    assert _private_imports(f"{NAME}.m", path, modules) == [f"{NAME}.m: from {NAME}.a import _b"]


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    found = [hit for name, path in modules.items() for hit in _private_imports(name, path, modules)]
    assert found == []
