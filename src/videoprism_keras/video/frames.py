"""One frame → the model's size, with a policy for frames of another aspect ratio.

The official colab resizes with PIL's Lanczos filter on uint8 frames (through
`mediapy.resize_video`) and refuses any aspect-ratio mismatch. We keep that resize
exactly, and for frames whose aspect ratio differs from the target offer:

    "center_crop"  (default) crop the largest centred region with the target's aspect
                   ratio, then resize. Nothing is distorted, which matters because the
                   model only ever saw undistorted frames; the borders are lost.
    "squash"       resize straight to the target: everything kept, shapes distorted.
    "pad"          resize to fit inside the target, then pad with black: everything
                   kept, undistorted, but part of the input is empty.

For frames already of the target's aspect ratio (the only ones the official code
accepts) the three modes are the same plain Lanczos resize, so the default stays
bit-exact with the official preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESIZE_MODES = ("center_crop", "squash", "pad")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

Transform = Callable[[np.ndarray], np.ndarray]


def _lanczos(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL Lanczos resize; note that PIL sizes are (width, height)."""
    from PIL import Image

    if image.dtype == np.uint8:
        resized = Image.fromarray(np.ascontiguousarray(image)).resize(
            (width, height), Image.Resampling.LANCZOS
        )
        return np.asarray(resized)
    # Float frames: resize each channel in PIL's 32-bit float mode so nothing is
    # quantised to 8 bits; Lanczos overshoots near edges, hence the clip to [0, 1].
    channels = []
    for c in range(image.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), mode="F")
        channels.append(np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS)))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def _center_crop(image: np.ndarray, target_h: int, target_w: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h * target_w > w * target_h:  # taller than the target: crop rows
        rows = max(1, round(w * target_h / target_w))
        top = (h - rows) // 2
        return image[top : top + rows]
    cols = max(1, round(h * target_w / target_h))
    left = (w - cols) // 2
    return image[:, left : left + cols]


def fit_frame(image: np.ndarray, size: int | Sequence[int],
              resize_mode: str = "center_crop") -> np.ndarray:  # fmt: skip
    """(H, W, 3) uint8 or float frame → (size[0], size[1], 3), same dtype."""
    check_resize_mode(resize_mode)
    return _fit_frame(image, normalize_size(size), resize_mode)


def _fit_frame(image: np.ndarray, target: tuple[int, int], resize_mode: str) -> np.ndarray:
    target_h, target_w = target
    h, w = image.shape[:2]
    if (h, w) == (target_h, target_w):
        return image
    if h * target_w == w * target_h or resize_mode == "squash":
        return _lanczos(image, target_w, target_h)
    if resize_mode == "center_crop":
        return _lanczos(_center_crop(image, target_h, target_w), target_w, target_h)
    scale = min(target_h / h, target_w / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.zeros((target_h, target_w, image.shape[2]), dtype=image.dtype)
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    out[top : top + new_h, left : left + new_w] = _lanczos(image, new_w, new_h)
    return out


def check_resize_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; got {resize_mode!r}")


def normalize_size(size: int | Sequence[int]) -> tuple[int, int]:
    """`size` is (height, width); a single int means a square."""
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive (height, width); got {size}")
    return height, width


def fit(size: int | Sequence[int], resize_mode: str = "center_crop") -> Transform:
    """A frame transform for `size` (height, width) and `resize_mode`, checked once."""
    check_resize_mode(resize_mode)
    target = normalize_size(size)
    return lambda image: _fit_frame(image, target, resize_mode)


def as_frame_array(frames: np.ndarray | Sequence) -> np.ndarray:
    """Frames already in memory (an array, or a list of arrays / PIL images) → (T, H, W, 3).

    uint8 frames are returned as they are (no copy); float frames must be in [0, 1]
    and become float32, so the caller can tell the two scales apart by dtype. Other
    integer types are refused rather than guessed at: int16 frames may hold 0–255 or
    0–65535, so the caller converts them.
    """
    if isinstance(frames, np.ndarray):
        array = frames
    else:
        frames = list(frames)
        if not frames:
            raise ValueError("frames are empty: no frame to sample")
        array = np.stack(
            [np.asarray(f.convert("RGB") if hasattr(f, "convert") else f) for f in frames]
        )
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB; got shape {array.shape}")
    if len(array) == 0:
        raise ValueError("frames are empty: no frame to sample")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"integer frames must be uint8 (0–255); got {array.dtype}: convert them, e.g. "
            "`frames.astype(np.uint8)` for values in 0–255, or pass floats in [0, 1]"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"frames must be uint8 or float in [0, 1]; got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError("float frames must be in [0, 1] (or pass uint8 in [0, 255])")
    return array
