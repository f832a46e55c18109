"""What the engines' runners share: the thread count, and running a batch through an
artefact of a fixed batch one clip at a time."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np


def threads() -> int:
    """The cores this process may run on (its affinity, which `taskset` and containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def per_batch(
    run: Callable[[np.ndarray, np.ndarray], dict], fixed_batch: int | None
) -> Callable[[np.ndarray, np.ndarray], dict]:
    """`run` for any batch: as it is for a free batch, else one clip at a time (an
    artefact exported with a batch of 1), the outputs stacked."""
    if fixed_batch is None:
        return run
    if fixed_batch != 1:
        raise ValueError(
            f"an engine artefact takes a free batch or a batch of 1; got {fixed_batch}"
        )

    def looped(pixels: np.ndarray, mask: np.ndarray) -> dict:
        outs = [run(pixels[i : i + 1], mask[i : i + 1]) for i in range(len(pixels))]
        return {key: np.concatenate([out[key] for out in outs]) for key in outs[0]}

    return looped
