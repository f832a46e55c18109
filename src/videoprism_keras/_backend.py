"""Picks the Keras backend before Keras is first imported.

Keras reads `KERAS_BACKEND` once, at import. We prefer JAX (the official
implementation's framework, and our fastest path) when the user has not chosen.
"""

import importlib.util
import os
import sys


def choose_default_backend() -> None:
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    if importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = "jax"
