"""Google's official Flax checkpoints (`flax_*_repeated.npz`) in and out.

The public entry points; the reading and writing are `saving`'s, the tensor names
`weight_tables`'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import saving
from .constants import DEFAULT_SOFT_CAP
from .model.backbone import VideoPrismBackbone


def load_flax_checkpoint(
    path_or_mapping: str | os.PathLike | Mapping,
    attention_logit_soft_cap: float | None = DEFAULT_SOFT_CAP,
    **overrides: Any,
) -> VideoPrismBackbone:
    """Builds a `VideoPrismBackbone` from an official VideoPrism checkpoint.

    Everything but the overrides (layer counts, widths, heads, patch size, position
    grids, vocabulary) is read off the tensor shapes.

    Args:
        path_or_mapping: str, path or mapping. An official `.npz` (e.g.
            `flax_lvt_base_f16r288_repeated.npz`), or a mapping of its `params/...`
            keys (flat, or nested like Flax variables).
        attention_logit_soft_cap: float or None. Not stored in checkpoints; every
            release uses 50. Defaults to `constants.DEFAULT_SOFT_CAP` (50).
        **overrides: any other `VideoPrismBackbone` argument. `num_frames` or
            `image_shape` other than the checkpoint's resize its position tables.
    """
    return saving.load_official(
        VideoPrismBackbone, path_or_mapping, attention_logit_soft_cap, **overrides
    )


def export_flax_checkpoint(
    model: VideoPrismBackbone, path: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Our weights in the official release layout (`params/...`, stacks on axis 0).

    Args:
        model: `VideoPrismBackbone`. A float (not quantized) model.
        path: str, path or None. Where `np.savez` writes the dict, so that the
            official Flax code (or `load_flax_checkpoint`) can read it back.
            Defaults to `None` (nothing written).

    Returns:
        The flat dict of official keys to arrays.
    """
    return saving.export_flax_checkpoint(model, path)
