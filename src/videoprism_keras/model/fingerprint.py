"""A model known by content rather than by name: a hash of its weights, and the entries of
its configuration that change what it computes.

A preset names a model by a path or a name, and the file behind a path can be replaced by
other weights of the same shapes. What is keyed on a model (an index's embeddings, the
evaluation cache, an engine's compiled artefact) is keyed on these instead.

The hash is of the loaded weights, not of the checkpoint file: it is the same whatever the
preset's form (a name, an .npz, a Keras preset folder, a model built in Python), and hashing
the weights costs what reading the file once would (under a second for the largest model).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

# Configuration entries that do not change what a clip embeds to (or are checked
# separately, as an index's dtype setting is).
NOT_IDENTITY = frozenset({"name", "trainable", "dtype", "dropout_rate", "attention_dropout_rate"})


def weights_sha256(model: Any) -> str:
    """SHA-256 of every weight's path, shape, dtype and values, in the model's order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        values = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(f"{weight.path}\n{values.shape}\n{values.dtype}\n".encode())
        # As bytes: bfloat16 (ml_dtypes) has no buffer format a memoryview could take.
        digest.update(values.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def identity_config(model: Any) -> dict:
    """The model's configuration without the entries of `NOT_IDENTITY`."""
    return {k: v for k, v in model.get_config().items() if k not in NOT_IDENTITY}
