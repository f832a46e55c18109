"""The coarse stage of a moment search over an index: every window's score in one
matrix-vector product over the held vectors, grouped by video without a Python loop.

Scores are cosine similarities after centring on the index's mean embedding: embeddings
of unrelated content share a large common direction, which compresses every curve
towards 1 and puts half height inside the moment; centred, a window is scored by what
sets it apart. The centred score is `(v·q' − μ·q') / (|v − μ| |q'|)` with `q' = q − μ`:
one product over the held vectors, with each row's `|v − μ|` computed once per snapshot.

The top `k` moments rank by their peak's score, and a video's first moment peaks at its
best window, so they all come from the `k` videos whose best windows score highest: only
those videos' curves are grown into spans (`timeline.moments_of`), against the baseline
of every selected window.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from ...constants import CENTRED_FLOOR
from ..timeline import Curve, Moment, baseline_of, centring, moments_of
from .snapshot import Snapshot


class Grouping:
    """A snapshot's windows sorted by video, then start: computed once per snapshot.

    Args:
        rows: `Snapshot`. The held rows.

    Attributes:
        version: int. The snapshot's table version.
        order: (N,) int array. Positions in `rows`, by video code then start.
        firsts: (V,) int array. Where each video's run starts in `order`.
        mean: (D,) float32 array. The mean of every held vector.
        norms: (N,) float32 array. Each vector's distance from the mean.
    """

    def __init__(self, rows: Snapshot):
        self.version = rows.version
        self.order = np.lexsort((rows.start_s, rows.codes))
        self.firsts = _firsts(rows.codes[self.order])
        mean, _, norms = centring(rows.vectors)  # in float64, a bounded piece at a time
        self.mean = mean.astype(np.float32)
        self.norms = np.maximum(norms, CENTRED_FLOOR).astype(np.float32)

    def scores(self, vectors: np.ndarray, query: np.ndarray,
               positions: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        """The centred cosine of `query` (unit) with `vectors` (the held rows at
        `positions`, or all of them)."""
        centred = query - self.mean
        size = float(np.linalg.norm(centred))
        if size < CENTRED_FLOOR:  # the query is the mean itself: nothing sets rows apart
            return vectors @ query
        norms = self.norms if positions is None else self.norms[positions]
        return (vectors @ centred - float(self.mean @ centred)) / (norms * size)


def _firsts(sorted_codes: np.ndarray) -> np.ndarray:
    """Where each run of equal codes starts."""
    if not len(sorted_codes):
        return np.zeros(0, np.intp)
    return np.concatenate([[0], np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1])


def check_windows(rows: Snapshot, order: np.ndarray, uri: str) -> None:
    """Refuses an index whose selected clips have no times: whole videos have no curve."""
    if len(order) and np.isnan(rows.start_s[order]).any():
        raise ValueError(f"the index {uri} holds whole videos (clips without times), and a "
                         "moment needs windows: rebuild it with clip_seconds (`videoprism "
                         "index --clip-seconds`). Received: "
                         f"{int(np.isnan(rows.start_s[order]).sum())} selected clips without "
                         "times")  # fmt: skip


def _selection(rows: Snapshot, grouping: Grouping, chosen: np.ndarray | None):
    """The sorted positions kept by `chosen` (positions in `rows`; None: all) and where
    each video's run starts among them."""
    if chosen is None or len(chosen) == len(rows):
        return grouping.order, grouping.firsts
    keep = np.zeros(len(rows), bool)
    keep[chosen] = True
    order = grouping.order[keep[grouping.order]]
    return order, _firsts(rows.codes[order])


def _curve(rows: Snapshot, positions: np.ndarray, scores: np.ndarray) -> Curve:
    return Curve(str(rows.paths[positions[0]]), rows.start_s[positions], rows.end_s[positions],
                 scores)  # fmt: skip


def index_curves(rows: Snapshot, grouping: Grouping, query: np.ndarray,
                 chosen: np.ndarray | None, paths: Iterable[str] | None,
                 uri: str) -> list[Curve]:  # fmt: skip
    """Every selected video's curve (only those of `paths`, if given), in path order."""
    order, firsts = _selection(rows, grouping, chosen)
    if paths is not None:
        wanted = {str(p) for p in paths} | {os.path.realpath(os.fspath(p)) for p in paths}
        keep = np.isin(rows.paths[order], list(wanted))
        order = order[keep]
        firsts = _firsts(rows.codes[order])
    check_windows(rows, order, uri)
    if not len(order):
        return []
    if 2 * len(order) > len(rows):  # most rows: one product, no copy of their vectors
        scores = grouping.scores(rows.vectors, query)[order]
    else:
        scores = grouping.scores(rows.vectors[order], query, order)
    ends = np.append(firsts[1:], len(order))
    curves = [_curve(rows, order[a:b], scores[a:b]) for a, b in zip(firsts, ends, strict=True)]
    return sorted(curves, key=lambda c: c.path)


def index_moments(rows: Snapshot, grouping: Grouping, query: np.ndarray, top_k: int,
                  relative: float, chosen: np.ndarray | None,
                  uri: str) -> list[Moment]:  # fmt: skip
    """The coarse moments: the `top_k` best over the selected videos, best first."""
    order, firsts = _selection(rows, grouping, chosen)
    if not len(order):
        return []
    check_windows(rows, order, uri)
    # One pass over the held vectors (memory-bound): all of them, then the selection, is
    # cheaper than gathering the selected rows first.
    scores = grouping.scores(rows.vectors, query)[order]
    baseline = baseline_of(scores)  # as `moments_of` takes it from the curves
    best = np.maximum.reduceat(scores, firsts)  # each video's best window
    if len(best) > top_k:
        kth = np.partition(best, len(best) - top_k)[len(best) - top_k]
        videos = np.flatnonzero((best >= kth) & (best > baseline))  # ties all kept
    else:
        videos = np.flatnonzero(best > baseline)
    ends = np.append(firsts[1:], len(order))
    curves = [_curve(rows, order[firsts[v] : ends[v]], scores[firsts[v] : ends[v]])
              for v in videos]  # fmt: skip
    return moments_of(curves, top_k, relative=relative, baseline=baseline)
