"""Finding copies on Ray: the blocks of query windows (`copies.py`) as Ray tasks.

The held rows and the centring are put in the object store once; each task computes one
block's matches (`copy_search.block_matches`: the same function as in process, on the same
blocks, so the result is identical) and the driver gathers them in the blocks' order.
Through the vector index, each task opens the table at the version the driver holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .copy_search import block_matches, open_table
from .ray_session import RayUnavailable, ray_session

__all__ = ["RayUnavailable", "session"]

IN_FLIGHT = 8  # tasks submitted ahead of the gathered ones: a bounded set of results held


class _Remote:
    def __init__(self, ray: Any):
        self.ray = ray
        self.task = ray.remote(_task)

    def share(self, rows, centring, k, threshold, ann) -> None:
        self.shared = self.ray.put((rows, centring, k, threshold, ann))

    def run(self, blocks: list[np.ndarray]) -> list:
        out, pending = [], []
        for block in blocks:
            pending.append(self.task.remote(self.shared, block))
            if len(pending) >= IN_FLIGHT:
                out.append(self.ray.get(pending.pop(0)))
        out.extend(self.ray.get(pending))
        return out


def _task(shared, block):
    rows, centring, k, threshold, ann = shared
    table = None if ann is None else open_table(ann)
    return block_matches(rows, centring, block, k, threshold, ann, table)


@contextlib.contextmanager
def session(address: str | None) -> Iterator[_Remote]:
    """This process's Ray session, or one at `address` (None: a new local instance),
    with what the tasks run."""
    with ray_session(address) as ray:
        yield _Remote(ray)
