"""VideoPrism (Google DeepMind, ICML 2024) in Keras 3, on JAX, PyTorch and TensorFlow.

Names are imported lazily, so `videoprism_keras.tokenizer` and
`videoprism_keras.video` work without loading Keras.
"""

import importlib

from .backend import choose_default_backend, register_if_pending, register_with_keras
from .constants import VERSION

choose_default_backend()

__version__ = VERSION

_EXPORTS = {
    "VideoPrismBackbone": "videoprism_keras.model.backbone",
    "VideoPrismVideoClassifier": "videoprism_keras.classifier",
    "load_flax_checkpoint": "videoprism_keras.checkpoint",
    "export_flax_checkpoint": "videoprism_keras.checkpoint",
    "VideoPrismTokenizer": "videoprism_keras.tokenizer",
    "canonicalize_text": "videoprism_keras.tokenizer",
}
_SUBMODULES = (
    "apps", "video", "tokenizer", "hub", "presets", "runtime", "checkpoint", "saving", "constants",
)  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        register_if_pending()
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"videoprism_keras.{name}")
        register_if_pending()
        return module
    raise AttributeError(f"module 'videoprism_keras' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])


register_with_keras()  # last: our classes become loadable by Keras (see `backend`)
