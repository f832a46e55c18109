"""Holding back what native libraries write straight to file descriptor 2.

TensorFlow's and Ray's C++ sides print INFO lines when they load or start ("oneDNN custom
operations are on", "Could not find cuda drivers", Ray's log-level and authentication
notes), whatever the Python log level. In front of a command's own output they are noise;
if the block fails, they may explain why, so by default they are shown after all.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile


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
def held_while_importing(*names):
    """Meanwhile, whoever first imports one of the modules `names` imports it in
    `held_stderr`: a library's load-time lines are held back wherever the import happens
    (Keras, for one, loads TensorFlow only when it first serializes), and nothing is loaded
    before it is needed."""
    finder = _HeldImport(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)


class _HeldImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loaders of some modules in `held_stderr`, once each."""

    def __init__(self, names):
        self.names = {name for name in names if name not in sys.modules}

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:
            return None
        index = sys.meta_path.index(self)
        sys.meta_path.remove(self)  # the finders behind this one find it
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(index, self)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        # A module counts as imported once it runs, not once it is found: a check that only
        # looks for it (`importlib.util.find_spec`, as `extras` does) must not use up the hold.
        def exec_module(module):
            self.names.discard(fullname)
            with held_stderr():
                run(module)

        spec.loader.exec_module = exec_module
        return spec
