"""Finding copies on Ray: the blocks of query windows (`copies.py`) as Ray tasks.

What every block needs (exact: the centred unit vectors and each row's video) is put in
the object store once; each task runs one block (`copy_search.block_task`: the same
function as in process, on the same blocks) and the driver gathers the results in the
blocks' order. Through the vector index, a task gets its block's vectors, opens the table
at the version the driver holds and returns the candidates, which the driver scores
against the vectors it holds: nothing as large as the index is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from .copy_search import block_task
from .ray_session import RayUnavailable, ray_session

__all__ = ["RayUnavailable", "session"]

IN_FLIGHT = 8  # tasks submitted ahead of the gathered ones: payloads in the store bounded


class _Remote:
    def __init__(self, ray: Any):
        self.ray = ray
        self.task = ray.remote(block_task)

    def share(self, shared: tuple) -> None:
        self.shared = self.ray.put(shared)

    def run(self, payloads: Iterable) -> list:
        out, pending = [], []
        for payload in payloads:
            pending.append(self.task.remote(self.shared, payload))
            if len(pending) >= IN_FLIGHT:
                out.append(self.ray.get(pending.pop(0)))
        out.extend(self.ray.get(pending))
        return out


@contextlib.contextmanager
def session(address: str | None) -> Iterator[_Remote]:
    """This process's Ray session, or one at `address` (None: a new local instance),
    with what the tasks run."""
    with ray_session(address) as ray:
        yield _Remote(ray)
