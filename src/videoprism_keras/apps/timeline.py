"""Moments: where in a video the query's similarity curve rises into a start–end span.

A video's windows (clips, possibly overlapping) each have the query's cosine similarity;
over the windows' centres these form a curve. Most windows are not the moment, so the
median score is the baseline. A moment is a peak grown over its adjacent windows that
stay above a threshold part-way from the baseline to the peak (half height by default).
Its edges are where the curve crosses that threshold between window centres: a window
half inside the moment scores about halfway, so the crossing estimates where the content
changes better than any window's edge does.

Numpy only: the CLI, the server and the streaming search share it without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..constants import CENTRED_FLOOR, MOMENT_RELATIVE

# Rows of a temporary copy at a time when centring many vectors (`centring`, and
# `copy_search.Centring.unit`): a float64 copy of a few thousand rows is tens of MB
# whatever the index's size, and still large enough for a fast matrix product.
CENTRING_PIECE = 8_192
# Squared distances from the mean below this are computed again in float64 (`centring`):
# above it, float32's rounding moves a norm by under 1e-5 of itself.
CENTRING_RECHECK = 1e-2

# Windows this close (in seconds) count as adjacent: times come through float32 and
# decimal strides.
ADJACENT_SLACK_S = 1e-3
# A peak must rise this far above the baseline to be a moment: one window scored in two
# batches of other shapes differs by float32 rounding (~1e-6), and a flat (static) curve's
# rounding is no moment.
PEAK_MIN_RISE = 1e-4


@dataclass(frozen=True)
class Moment:
    """A span of one video that matches a query.

    Attributes:
        path: str. The video.
        start_s, end_s: float. The span, in seconds from the video's start.
        score: float. What the moment ranks by: for a coarse moment, its peak window's
            score on the curve (an index's curves are cosines centred on the index's
            mean embedding: `VideoIndex.curves`); for a refined one, the cosine
            similarity of the whole span embedded as one clip (`refine.refine`).
    """

    path: str
    start_s: float
    end_s: float
    score: float

    def as_dict(self) -> dict:
        """The moment as JSON-ready `{"path", "start_s", "end_s", "score"}`."""
        return {"path": self.path, "start_s": float(self.start_s), "end_s": float(self.end_s),
                "score": float(self.score)}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Curve:
    """One video's windows, sorted by start, and the query's similarity to each.

    Args:
        path: str. The video.
        start_s: (W,) float array. Each window's start in seconds; finite.
        end_s: (W,) float array. Each window's end in seconds; finite.
        scores: (W,) float array. The query's similarity to each window (a cosine,
            centred or not); finite.

    Raises:
        ValueError: if the arrays differ in length, are empty, hold NaN or infinity, a
            window ends before it starts, or the windows are not sorted by start.
    """

    path: str
    start_s: np.ndarray = field(repr=False)
    end_s: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)

    def __post_init__(self):
        arrays = {}
        for name in ("start_s", "end_s", "scores"):
            value = np.asarray(getattr(self, name), np.float64).reshape(-1)
            if not np.isfinite(value).all():
                raise ValueError(f"Curve {name} of {self.path!r} must be finite; it holds NaN "
                                 f"or infinity (a video without window times cannot have a "
                                 f"curve).")  # fmt: skip
            arrays[name] = value
            object.__setattr__(self, name, value)
        sizes = {name: len(value) for name, value in arrays.items()}
        if len(set(sizes.values())) != 1 or not sizes["scores"]:
            raise ValueError(f"Curve of {self.path!r} needs start_s, end_s and scores of one "
                             f"non-zero length. Received: lengths {sizes}.")  # fmt: skip
        backwards = np.flatnonzero(self.end_s < self.start_s)
        if len(backwards):
            i = int(backwards[0])
            raise ValueError(f"Curve of {self.path!r}: a window ends before it starts. "
                             f"Received: start_s[{i}]={self.start_s[i]!r}, "
                             f"end_s[{i}]={self.end_s[i]!r}")  # fmt: skip
        unsorted = np.flatnonzero(np.diff(self.start_s) < 0)
        if len(unsorted):
            i = int(unsorted[0])
            raise ValueError(f"Curve of {self.path!r}: windows must be sorted by start_s. "
                             f"Received: start_s[{i}]={self.start_s[i]!r} before "
                             f"start_s[{i + 1}]={self.start_s[i + 1]!r}")  # fmt: skip

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def centres(self) -> np.ndarray:
        """(W,) float array. Each window's middle, in seconds."""
        return (self.start_s + self.end_s) / 2

    def as_dict(self) -> dict:
        """The curve as JSON-ready lists: `{"path", "start_s", "end_s", "scores"}`."""
        return {"path": self.path, "start_s": self.start_s.tolist(),
                "end_s": self.end_s.tolist(), "scores": self.scores.tolist()}  # fmt: skip


def centred_scores(vectors: np.ndarray, query: np.ndarray,
                   mean: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The cosine of `query` with each of `vectors` after centring both on `mean`: a
    curve's scores as `VideoIndex.curves` makes them, for windows embedded elsewhere
    (a file streamed without an index).

    Embeddings of unrelated content share a large common direction, so raw cosines press
    every curve towards 1 and half height falls inside the moment; centred, a window is
    scored by what sets it apart.

    Args:
        vectors: (W, D) array. The windows' embeddings.
        query: (D,) array. The query's embedding.
        mean: (D,) array or None. What to centre on. Defaults to None: the mean of
            `vectors` (of one video, or of a whole collection if they are one).

    Returns:
        (W,) float32 array in [-1, 1]; plain cosines for a query at the mean itself
        (nothing sets the windows apart from its side).
    """
    vectors = np.asarray(vectors, np.float32)
    query = np.asarray(query, np.float32).reshape(-1)
    mean = vectors.mean(axis=0) if mean is None else np.asarray(mean, np.float32)
    centred = query - mean
    size = float(np.linalg.norm(centred))
    if size < CENTRED_FLOOR:
        return (vectors @ query).astype(np.float32)
    norms = np.maximum(np.linalg.norm(vectors - mean, axis=1), CENTRED_FLOOR)
    return ((vectors - mean) @ centred / (norms * size)).astype(np.float32)


def centring(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What centred cosines over many unit vectors need: their mean `m`, each one's `v·m`,
    and each one's distance from the mean, `|v − m|² = 1 − 2 v·m + m·m` (one product, no
    centred copy).

    That difference nears 0 for a vector near the mean, where float32's rounding of
    `v·m` (~1e-7) is a large share of it: one float32 product for every row, then the
    rows nearer the mean than `CENTRING_RECHECK` summed again in float64.

    Args:
        vectors: (N, D) array. Unit vectors (float32 as stored).

    Returns:
        mean (D,), along (N,) and norms (N,), float64 arrays (zeros for no vectors).
    """
    if not len(vectors):
        return np.zeros(vectors.shape[1]), np.zeros(0), np.zeros(0)
    mean = vectors.mean(axis=0, dtype=np.float64)
    mean_sq = float(mean @ mean)
    along = (vectors @ mean.astype(vectors.dtype)).astype(np.float64)
    near = np.flatnonzero(1.0 - 2.0 * along + mean_sq < CENTRING_RECHECK)
    for i in range(0, len(near), CENTRING_PIECE):  # a bounded float64 temporary
        rows = near[i : i + CENTRING_PIECE]
        along[rows] = vectors[rows].astype(np.float64) @ mean
    norms = np.sqrt(np.maximum(1.0 - 2.0 * along + mean_sq, 0.0))
    return mean, along, norms


def check_top_k(top_k) -> int:
    """`top_k` as an int, checked to be at least 1."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer of at least 1. Received: top_k={top_k!r}")
    return int(top_k)


def check_relative(relative) -> float:
    """`relative` as a float, checked to be in (0, 1)."""
    if isinstance(relative, bool) or not 0 < float(relative) < 1:
        raise ValueError(f"relative must be between 0 and 1 (exclusive). "
                         f"Received: relative={relative!r}")  # fmt: skip
    return float(relative)


def baseline_of(scores: Sequence[Curve] | np.ndarray) -> float:
    """The median score over every window of some curves (or of an array of scores): most
    windows are not the moment. Taken in float64, so that an index's moments and
    `moments_of` over its curves share it exactly."""
    if not isinstance(scores, np.ndarray):
        scores = np.concatenate([curve.scores for curve in scores])
    return float(np.median(scores.astype(np.float64)))


def moments_of(curves: Sequence[Curve], top_k: int, *, relative: float = MOMENT_RELATIVE,
               baseline: float | None = None) -> list[Moment]:  # fmt: skip
    """The best moments of some videos' curves: peaks grown into start–end spans.

    Each curve's highest window not yet in a moment is a peak; the span grows left and
    right over adjacent or overlapping windows scoring above
    `baseline + relative * (peak - baseline)`, and its edges go where the curve crosses
    that threshold. The peak's slopes (windows falling away from the span) are spent
    with it, so that a window half inside a moment is no moment of its own. This
    repeats until a curve has `top_k` moments or nothing rises above the baseline
    (by more than rounding); moments
    rank by their peak's score.

    Args:
        curves: sequence of `Curve`. The videos' similarity curves.
        top_k: int. How many moments to return, at most; at least 1.
        relative: float. The threshold's height between the baseline (0) and the peak
            (1); in (0, 1). Defaults to `MOMENT_RELATIVE` (half height).
        baseline: float or None. The score of "not the moment". Defaults to None: the
            median over every window of `curves` (pass the median over a whole index
            when `curves` are only its best videos).

    Returns:
        list of `Moment`, best first; empty when no window scores above the baseline
        (every curve flat).

    Raises:
        ValueError: if `top_k` is below 1 or `relative` is outside (0, 1).
    """
    top_k = check_top_k(top_k)
    relative = check_relative(relative)
    curves = list(curves)
    if not curves:
        return []
    base = baseline_of(curves) if baseline is None else float(baseline)
    found = [moment for curve in curves for moment in _curve_moments(curve, top_k, relative,
                                                                     base)]  # fmt: skip
    found.sort(key=lambda m: (-m.score, m.path, m.start_s))
    return found[:top_k]


def _curve_moments(curve: Curve, top_k: int, relative: float, base: float) -> list[Moment]:
    scores, starts, ends = curve.scores, curve.start_s, curve.end_s
    centres = curve.centres
    # Window i and i+1 touch: the next one starts before this one ends (any clip/stride).
    touches = starts[1:] <= ends[:-1] + ADJACENT_SLACK_S
    used = np.zeros(len(scores), bool)
    moments = []
    while len(moments) < top_k:
        free = np.where(used, -np.inf, scores)
        peak = int(np.argmax(free))  # the first of tied windows: deterministic
        if not free[peak] > base + PEAK_MIN_RISE:
            break
        top = scores[peak]
        threshold = base + relative * (top - base)
        lo = hi = peak
        while lo > 0 and touches[lo - 1] and not used[lo - 1] and scores[lo - 1] > threshold:
            lo -= 1
        while (hi < len(scores) - 1 and touches[hi] and not used[hi + 1]
               and scores[hi + 1] > threshold):  # fmt: skip
            hi += 1
        start = _edge(scores, centres, starts, ends, lo, lo - 1, touches, threshold)
        end = _edge(scores, centres, starts, ends, hi, hi + 1, touches, threshold)
        moments.append(Moment(curve.path, start, max(end, start), float(top)))
        # The peak's whole hill is spent, its slopes below the threshold too: a window
        # half inside this moment is not another moment.
        while lo > 0 and touches[lo - 1] and not used[lo - 1] and scores[lo - 1] <= scores[lo]:
            lo -= 1
        while (hi < len(scores) - 1 and touches[hi] and not used[hi + 1]
               and scores[hi + 1] <= scores[hi]):  # fmt: skip
            hi += 1
        used[lo : hi + 1] = True
    return moments


def _edge(scores, centres, starts, ends, inside, outside, touches, threshold):
    """Where the span's edge on the side of window `outside` goes (left when it is below
    `inside`): the threshold crossing between their centres when they touch; else (the
    video's first or last window, or a gap) the inside window's own edge: a window above
    the threshold is mostly moment, and nothing beside it says where the moment ends."""
    if 0 <= outside < len(scores) and touches[min(inside, outside)]:
        low, high = scores[outside], scores[inside]
        if low <= threshold < high:  # interpolate between the centres
            share = (threshold - low) / (high - low)
        else:  # the neighbour is another moment's (a tie, or above this threshold)
            share = 0.5
        return float(centres[outside] + share * (centres[inside] - centres[outside]))
    return float(starts[inside] if outside < inside else ends[inside])
