"""Holding back what native libraries write straight to file descriptor 2.

TensorFlow's and Ray's C++ sides print INFO lines when they load or start ("oneDNN custom
operations are on", "Could not find cuda drivers", Ray's log-level and authentication
notes), whatever the Python log level. In front of a command's own output they are noise;
if the block fails, they may explain why, so by default they are shown after all.
"""

import contextlib
import importlib.abc
import os
import sys
import tempfile
from collections.abc import Iterator

# Packages whose import writes native log lines to the terminal, wherever it happens:
# TensorFlow's start-up lines (oneDNN, CUDA drivers, CPU features), which
# TF_CPP_MIN_LOG_LEVEL does not silence (absl prints them before reading it).
LOUD_PACKAGES = ("tensorflow",)


@contextlib.contextmanager
def held_stderr(replay_on_error=True):
    """File descriptor 2 goes to a temporary file meanwhile; replayed on an error unless
    told not to (where the caller says what failed in its own words)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            if replay_on_error:
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def quiet_imports(names: tuple[str, ...]) -> Iterator[None]:
    """Whenever a package of `names` is first imported meanwhile, by whoever and however
    deep (Keras imports TensorFlow lazily, e.g. when it serializes a config), its import
    runs under `held_stderr`: its load-time lines are held back, and shown if it fails."""
    finder = _QuietFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds a package as the other finders do, and hands out its spec with a loader
    that runs the package's `__init__` (and so every import it makes) quietly."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module sees its own loader, as if we had never been there.
        module.__loader__ = module.__spec__.loader = self.loader
        with held_stderr():
            self.loader.exec_module(module)
