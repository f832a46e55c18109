"""Pixels → patch tokens, and the learned position tables that tell them apart.

The position tables are learned at the training shape (e.g. 16 frames of a 16×16
patch grid). Other frame counts or frame sizes resize them exactly as the
official code does with `jax.image.resize(..., "bilinear")`: a triangle kernel
that is widened (antialiased) when shrinking. A resize is linear, so we write it
as a small matrix built once in numpy per shape, which runs on any backend and
inside any jit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from .init import new_weight


@functools.lru_cache(maxsize=64)
def resize_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) weights of a 1-D bilinear resize, antialiased when shrinking."""
    scale = target / source
    kernel_scale = max(1.0 / scale, 1.0)  # widen the kernel only when downsampling
    centers = (np.arange(target) + 0.5) / scale - 0.5
    distance = np.abs(centers[:, None] - np.arange(source)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # Samples that fall outside the source contribute nothing (never the case for
    # a pure resize, kept for equivalence with jax.image.scale_and_translate).
    inside = (centers >= -0.5) & (centers <= source - 0.5)
    return (weights * inside[:, None]).astype(np.float32)


def grid_resize_matrix(source_grid: Sequence[int], target_grid: Sequence[int]) -> np.ndarray:
    """(prod(target), prod(source)) matrix resizing a row-major flattened grid, axis by axis."""
    matrix = np.ones((1, 1), np.float32)
    for src, dst in zip(source_grid, target_grid, strict=True):
        matrix = np.kron(matrix, resize_matrix(int(src), int(dst)))
    return matrix


def resize_positions(table: Any, source_grid: Sequence[int], target_grid: Sequence[int]) -> Any:
    """A (prod(source_grid), D) position table resized to `target_grid`.

    The one resize of learned position tables: at call time (a backend tensor), when
    loading a checkpoint of another shape and when a preset is loaded at other shapes
    (numpy arrays, which stay numpy).
    """
    source_grid = tuple(int(g) for g in source_grid)
    target_grid = tuple(int(g) for g in target_grid)
    if source_grid == target_grid:
        return table
    matrix = grid_resize_matrix(source_grid, target_grid)
    if isinstance(table, np.ndarray):
        return matrix @ table
    return ops.matmul(ops.cast(matrix, table.dtype), table)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class PositionTable(keras.layers.Layer):
    """A learned (prod(grid), D) position table, resizable to any grid at call time.

    Args:
        grid: sequence of ints. The grid the table is learned for: (frames,) or
            (rows, columns) of patches.
        dim: int. Width D of a position.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    def __init__(self, grid: Sequence[int], dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.grid = tuple(int(g) for g in grid)
        self.dim = dim

    def build(self, input_shape: tuple | None = None) -> None:
        self.table = new_weight(self, "table", (int(np.prod(self.grid)), self.dim))

    def get_config(self) -> dict:
        return {**super().get_config(), "grid": list(self.grid), "dim": self.dim}

    def resized(self, grid: Sequence[int]) -> Any:
        """The (prod(grid), D) table for the requested grid shape.

        A plain method, not `call`: its argument is a static shape, not a tensor.
        """
        grid = tuple(int(g) for g in grid)
        if len(grid) != len(self.grid):
            raise ValueError(f"expected a {len(self.grid)}-d grid, got {grid}")
        return resize_positions(self.table, self.grid, grid)


def to_patches(frames: Any, patch_size: int) -> Any:
    """(N, H, W, C) → (N, H/p · W/p, p·p·C), row-major patches of (row, col, channel) pixels."""
    _, height, width, channels = ops.shape(frames)
    rows, cols = height // patch_size, width // patch_size
    x = ops.reshape(frames, (-1, rows, patch_size, cols, patch_size, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, rows * cols, patch_size * patch_size * channels))


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """The text encoder's fixed (length, dim) table: sin | cos at timescales 1..1e4."""
    num_timescales = dim // 2
    increment = np.log(1e4) / max(num_timescales - 1, 1)
    inv_timescales = np.exp(np.arange(num_timescales, dtype=np.float32) * -increment)
    angles = np.arange(length, dtype=np.float32)[:, None] * inv_timescales[None, :]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    return np.pad(table, [(0, 0), (0, dim % 2)]).astype(np.float32)
