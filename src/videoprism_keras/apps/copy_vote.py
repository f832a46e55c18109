"""The second stage of finding copies: between two videos, the matched windows vote on a
time offset (Hough-style), and the matches at the winning offset, in runs of adjacent
windows, become the copies.

Each window of b votes once, with its best match: a window of a at t' matched to b's
window at t votes for the offset t' - t, binned at the index's stride (all its matches
would vote for every offset where a scene changes slowly). The best bin (most votes, then
the highest total score) and its two neighbours (a copy placed between two window starts
splits its votes between them) give the copy's matches; they are split into runs where
the windows of a leave a gap wider than `RUN_GAP_STRIDES` strides, and each run spanning
at least `min_seconds` is a copy. The bin's matches are then set aside and the vote
repeated, so that two parts of b in two places of a are both found (at most
`MAX_OFFSETS` votes per pair); a later copy overlapping an earlier one on either side is
an echo of it (a still scene matches its neighbours), not reported: a window is in one
copy at most, so b copied twice into a is found once.

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
        offset in a; the offset and the score are the mean of each b window's best
        match's (the offset weighted by the score).
    """
    offsets = start_a - start_b
    left = np.ones(len(offsets), bool)
    found = []
    for _ in range(MAX_OFFSETS):
        if not left.any():
            break
        voters = _best_of_each(np.flatnonzero(left), start_b, scores)
        bins = np.rint(offsets[voters] / stride).astype(np.int64)
        values, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
        totals = np.bincount(inverse, weights=scores[voters])
        best = values[np.lexsort((-totals, -counts))[0]]
        chosen = left & (np.abs(offsets - best * stride) <= stride * (1 + SLACK))
        left &= ~chosen
        at = np.flatnonzero(chosen)
        at = at[np.argsort(start_a[at], kind="stable")]
        breaks = np.flatnonzero(np.diff(start_a[at]) > RUN_GAP_STRIDES * stride + SLACK) + 1
        for run in np.split(at, breaks):
            best = _best_of_each(run, start_b, scores)
            weights = np.maximum(scores[best], SLACK)
            offset = float(np.average(offsets[best], weights=weights))
            first = max(start_a[run].min(), start_b[run].min() + offset)
            last = min(end_a[run].max(), end_b[run].max() + offset)
            copy = (float(first), float(last), offset, float(scores[best].mean()))
            long_enough = last - first >= min_seconds - SLACK
            if long_enough and not any(_echo(copy, c) for c in found):
                found.append(copy)
    return found


def _best_of_each(run: np.ndarray, start_b: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Of a run's matches, each window of b's best: its score and offset are the copy's
    (its other matches, a window of a stride before or after, score less)."""
    order = run[np.lexsort((-scores[run], start_b[run]))]
    first = np.ones(len(order), bool)
    first[1:] = start_b[order][1:] != start_b[order][:-1]
    return order[first]


def _echo(copy: tuple, earlier: tuple) -> bool:
    """Whether `copy` overlaps a copy found before it (a better one) on either side by
    more than half the shorter one: the same content matched at a second offset (a
    still or slowly changing scene matches its neighbours). Two parts of b side by side
    in a overlap by their windows' overhang only. So a window is in one copy at most,
    and b copied twice into a is found once."""
    shorter = min(copy[1] - copy[0], earlier[1] - earlier[0])
    a_overlap = min(copy[1], earlier[1]) - max(copy[0], earlier[0])
    b_overlap = (min(copy[1] - copy[2], earlier[1] - earlier[2])
                 - max(copy[0] - copy[2], earlier[0] - earlier[2]))  # fmt: skip
    return max(a_overlap, b_overlap) > shorter / 2
