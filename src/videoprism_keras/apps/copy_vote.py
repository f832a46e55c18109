"""The second stage of finding copies: between two videos, the matched windows vote on a
time offset (Hough-style), and the matches at the winning offset, in runs of adjacent
windows, become the copies.

A window of b at t matched to a window of a at t' votes for the offset t' - t, binned at
the index's stride. The best bin (most votes, then the highest total score) and its two
neighbours (a copy placed between two window starts splits its votes between them) give
the copy's matches; they are split into runs where the windows of a leave a gap wider
than `RUN_GAP_STRIDES` strides, and each run spanning at least `min_seconds` is a copy.
The bin's matches are then set aside and the vote repeated, so that b copied twice into a
gives two copies (at most `MAX_OFFSETS` per pair); a later copy overlapping an earlier one
on both sides is an echo of it (a still scene matches its neighbours), not reported.

A copy's spans are the same length on both sides: a's windows and b's windows moved by
the offset, intersected (each side's windows overhang the copy by up to a stride).
"""

from __future__ import annotations

import numpy as np

# Adjacent matched windows of a copy are a stride apart; one window that fell below the
# threshold (a cut, a fade) does not split the copy.
RUN_GAP_STRIDES = 2.0
MAX_OFFSETS = 8  # copies tried per pair of videos: the vote repeated at most this often
SLACK = 1e-6  # times compared in float


def pair_runs(start_a: np.ndarray, end_a: np.ndarray, start_b: np.ndarray,
              end_b: np.ndarray, scores: np.ndarray, stride: float,
              min_seconds: float) -> list[tuple[float, float, float, float]]:  # fmt: skip
    """The copies between two videos from their matched windows.

    Args:
        start_a, end_a: (M,) float arrays. Each match's window in a (seconds).
        start_b, end_b: (M,) float arrays. Its window in b.
        scores: (M,) float array. Each match's score.
        stride: float. The index's stride, in seconds (the vote's bin).
        min_seconds: float. The least length of a copy.

    Returns:
        Per copy: (start in a, end in a, offset, score), where a time t in b is t +
        offset in a, and the score is the mean of its matches'.
    """
    offsets = start_a - start_b
    left = np.ones(len(offsets), bool)
    found = []
    for _ in range(MAX_OFFSETS):
        if not left.any():
            break
        bins = np.rint(offsets[left] / stride).astype(np.int64)
        values, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
        totals = np.bincount(inverse, weights=scores[left])
        best = values[np.lexsort((-totals, -counts))[0]]
        chosen = left & (np.abs(offsets - best * stride) <= stride * (1 + SLACK))
        left &= ~chosen
        at = np.flatnonzero(chosen)
        at = at[np.argsort(start_a[at], kind="stable")]
        breaks = np.flatnonzero(np.diff(start_a[at]) > RUN_GAP_STRIDES * stride + SLACK) + 1
        for run in np.split(at, breaks):
            weights = scores[run]
            offset = float(np.average(offsets[run], weights=np.maximum(weights, SLACK)))
            first = max(start_a[run].min(), start_b[run].min() + offset)
            last = min(end_a[run].max(), end_b[run].max() + offset)
            copy = (float(first), float(last), offset, float(weights.mean()))
            if last - first >= min_seconds - SLACK and not any(_echo(copy, c) for c in found):
                found.append(copy)
    return found


def _echo(copy: tuple, earlier: tuple) -> bool:
    """Whether `copy` overlaps a copy found before it on both sides: the same content
    matched at a second offset (still or slowly changing scenes match their neighbours),
    not a second copy (a second copy of b in a is elsewhere in a; of a in b, elsewhere
    in b)."""
    a_overlap = min(copy[1], earlier[1]) - max(copy[0], earlier[0])
    b_overlap = (min(copy[1] - copy[2], earlier[1] - earlier[2])
                 - max(copy[0] - copy[2], earlier[0] - earlier[2]))  # fmt: skip
    return a_overlap > SLACK and b_overlap > SLACK
