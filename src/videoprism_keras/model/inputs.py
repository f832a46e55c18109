"""What the model takes in: image data formats, pixel values and token ids.

The checks on values (pixel range, finiteness, token ids within the vocabulary) run
on arrays that are already concrete: numpy inputs, nested lists, and every call of
`runtime.Encoder` (the apps' and the CLI's path). Inside a compiled function values
are symbolic and cannot be inspected, so tensors there are taken as they are. The
check reads the array once (its cost is in benchmarks/README.md, "input checks").
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

# Lanczos resizing overshoots slightly past [0, 1]; our own loader clips, others may not.
PIXEL_TOLERANCE = 1e-3


def standardize_data_format(data_format: str | None) -> str:
    """`data_format`, or Keras' configured one for None; anything but the two refused."""
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first'; got {data_format!r}"
        )
    return data_format


def frame_shape(image_shape: tuple, data_format: str) -> tuple:
    """`image_shape` in `data_format` order → (H, W, C)."""
    if data_format == "channels_first":
        return (image_shape[1], image_shape[2], image_shape[0])
    return tuple(image_shape)


def check_pixel_values(pixels: Any) -> np.ndarray:
    """Concrete pixel values → float32 in [0, 1], or a `ValueError` saying what is wrong.

    uint8 frames (0–255, what decoders and images give) are scaled by 1/255, as
    `load_video` does; other integer types are refused, since their scale is unknown.
    Floats must be finite and in [0, 1]: a video in 0–255 or standardised with a mean
    and a standard deviation would otherwise run and give a wrong embedding silently.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255)
    if pixels.dtype == np.bool_ or not np.issubdtype(pixels.dtype, np.number):
        raise ValueError(f"pixel_values must be uint8 or float in [0, 1]; got dtype {pixels.dtype}")
    if np.issubdtype(pixels.dtype, np.integer):
        raise ValueError(
            f"pixel_values of dtype {pixels.dtype}: pass uint8 (0–255) or float in [0, 1], "
            "e.g. `pixels.astype(np.uint8)` for values in 0–255"
        )
    pixels = pixels.astype(np.float32, copy=False)
    if pixels.size == 0:
        return pixels
    low, high = float(pixels.min()), float(pixels.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("pixel_values contain NaN or infinite values")
    if low < -PIXEL_TOLERANCE or high > 1 + PIXEL_TOLERANCE:
        hint = (
            "they look like 0–255: divide by 255 or pass uint8"
            if high > 2
            else "VideoPrism takes RGB in [0, 1], not values standardised with a mean and std"
        )
        raise ValueError(
            f"pixel_values must be in [0, 1]; got values in [{low:.4g}, {high:.4g}]: {hint}"
        )
    return pixels


def check_token_ids(token_ids: Any, vocabulary_size: int) -> None:
    """Concrete token ids must index the text embedding table."""
    token_ids = np.asarray(token_ids)
    if not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids must be integers; got dtype {token_ids.dtype}")
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocabulary_size):
        raise ValueError(
            f"token_ids must be in [0, {vocabulary_size}) (the model's vocabulary_size); got "
            f"ids in [{token_ids.min()}, {token_ids.max()}]: is the tokenizer the model's?"
        )


def is_concrete(x: Any) -> bool:
    """Whether `x` holds values we can read now (numpy, a list) rather than a tensor."""
    return isinstance(x, np.ndarray | list | tuple | np.generic)
