"""Weight creation, with a switch to skip random initialisation.

Drawing random values for 580M parameters costs seconds; when a checkpoint is
about to overwrite every weight anyway, `skip_initialization()` makes new
weights plain zeros instead.
"""

import contextlib
import contextvars

_SKIP = contextvars.ContextVar("videoprism_skip_initialization", default=False)


@contextlib.contextmanager
def skip_initialization():
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


def initializer(default):
    """`default`, or "zeros" inside `skip_initialization` (for Keras layers' initializers)."""
    return "zeros" if _SKIP.get() else default


def new_weight(layer, name, shape, default="glorot_uniform"):
    """`layer.add_weight`, honouring `skip_initialization`."""
    return layer.add_weight(name=name, shape=shape, initializer=initializer(default))
