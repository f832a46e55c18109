"""Weight creation, with a switch to skip random initialisation.

Drawing random values for every parameter of a large model takes time; when a
checkpoint is about to overwrite every weight anyway, `skip_initialization()` makes
new weights plain zeros instead.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

_SKIP = contextvars.ContextVar("videoprism_skip_initialization", default=False)


@contextlib.contextmanager
def skip_initialization() -> Iterator[None]:
    """Inside this context, new weights start as zeros instead of random values."""
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


def initializer(default: Any) -> Any:
    """`default`, or "zeros" inside `skip_initialization` (for Keras layers' initializers)."""
    return "zeros" if _SKIP.get() else default


def new_weight(
    layer: keras.layers.Layer, name: str, shape: tuple, default: Any = "glorot_uniform"
) -> keras.Variable:
    """`layer.add_weight`, honouring `skip_initialization`."""
    return layer.add_weight(name=name, shape=shape, initializer=initializer(default))
