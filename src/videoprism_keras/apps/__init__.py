"""What people do with VideoPrism: embed videos, label them zero-shot, search them.

Names are imported lazily, so the parts that need no model (`apps.where`, the `where`
grammar the CLI checks before anything loads) import without Keras.
"""

import importlib

_EXPORTS = {
    "Embeddings": "videoprism_keras.apps.embedding",
    "embed_videos": "videoprism_keras.apps.embedding",
    "find_videos": "videoprism_keras.apps.embedding",
    "IndexedClip": "videoprism_keras.apps.index",
    "SearchHit": "videoprism_keras.apps.index",
    "VideoIndex": "videoprism_keras.apps.index",
    "ZeroShotClassifier": "videoprism_keras.apps.zero_shot",
}
# Every submodule docs/api/apps.md documents, and those the CLI reaches through `apps`.
_SUBMODULES = ("copies", "embedding", "embed_writer", "evaluation", "identity", "index",
               "ray_model", "ray_pipeline", "refine", "streaming", "timeline", "where",
               "zero_shot")  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:  # `videoprism_keras.apps.index` without importing it first
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'videoprism_keras.apps' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
