"""Small shared helpers for the model tests."""

import keras
import numpy as np

# A tiny configuration, in the proportions of the real ones, that runs in milliseconds.
TINY = dict(
    num_frames=4,
    patch_size=4,
    hidden_dim=16,
    intermediate_dim=32,
    num_heads=2,
    num_spatial_layers=2,
    num_temporal_layers=1,
    num_auxiliary_layers=0,
    attention_logit_soft_cap=5.0,
    image_shape=(16, 16, 3),
)
TINY_LVT = dict(TINY, num_auxiliary_layers=1, vocabulary_size=50, num_text_layers=2)


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def random_video(batch=2, frames=4, size=16, seed=0):
    return (
        np.random.default_rng(seed).uniform(size=(batch, frames, size, size, 3)).astype("float32")
    )


def random_text(batch=3, length=7, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(batch, length)).astype("int32")
    lengths = rng.integers(1, length + 1, size=batch)
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    return ids * mask, mask
