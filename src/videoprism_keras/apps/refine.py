"""Coarse-to-fine moments: each coarse moment's edges placed again on a finer curve.

A coarse moment is as fine as its windows' stride. Around each edge, shorter windows
(`MOMENT_REFINE_WINDOW` of the index's clip) are embedded again at a finer stride, over
the ramp that the edge makes in their curve (one such window wide) and one coarse stride
more either side. Shorter, because a window holding two contents does not score halfway
between them: the more salient one dominates its embedding, which shifts the crossing
towards the other by up to half a window; a shorter window shifts it less (but sees
fewer frames: noisier). The edge moves to where this fine curve crosses the score of a
window `relative` (half) inside the moment, computed from the best window there
(inside), the worst (outside, the content beside the moment) and how alike those two
are (`mixed_score`). Only the frames these windows sample are decoded (seeking to the
keyframe before them), not the video.

Each refined moment is then embedded once as a whole span and scored by that: the
similarity of what the moment is, not of one window in it; the moments re-rank by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..constants import (
    MOMENT_REFINE_DIVISOR,
    MOMENT_REFINE_GROUP,
    MOMENT_REFINE_MARGIN,
    MOMENT_REFINE_WINDOW,
    MOMENT_RELATIVE,
    MOMENT_SNAP_LEAD_S,
    MOMENT_SNAP_STRIDES,
)
from ..video.clip_rows import as_model_input
from ..video.decode import scan, seek_cost, seek_frames, stream_frames
from ..video.options import Sampling
from ..video.sampling import choose, video_duration
from .timeline import Moment, check_relative

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder

# Frame times are compared this loosely (seconds): as `video.sampling` plans windows.
TIME_SLACK_S = 1e-6


def refine(model: VideoPrismBackbone, moments: Sequence[Moment], query: ArrayLike, *,
           clip_seconds: float, stride_seconds: float, num_frames: int,
           size: int | Sequence[int], shots: bool = False, relative: float = MOMENT_RELATIVE,
           batch_size: int = 8, encoder: Encoder | None = None) -> list[Moment]:  # fmt: skip
    """Coarse moments → refined ones: edges at the fine curve's threshold crossings
    (snapped to shot cuts with `shots`), scored as whole spans, best first.

    Args:
        model: `VideoPrismBackbone`. The model that embedded the windows (and the query).
        moments: sequence of `timeline.Moment`. The coarse moments, with their files.
        query: (D,) array. The query embedding (normalised here).
        clip_seconds: float. The coarse windows' length; the fine windows' is this
            times `MOMENT_REFINE_WINDOW`.
        stride_seconds: float. The coarse windows' stride; the fine stride is this
            divided by `MOMENT_REFINE_DIVISOR`.
        num_frames: int. Frames per window, as the coarse windows (and the query).
        size: int or (height, width). Frame size, as the coarse windows.
        shots: bool. Move each edge onto a shot cut within `MOMENT_SNAP_STRIDES` fine
            strides (`video.shots.shot_cuts` over those seconds only). Defaults to False.
        relative: float. The share of a window inside the moment at which an edge is
            placed, in (0, 1). Defaults to `MOMENT_RELATIVE` (half).
        batch_size: int. Windows per model call. Defaults to 8.
        encoder: `runtime.Encoder` or None. The compiled model calls. Defaults to None
            (a new `Encoder(model)`).

    Returns:
        list of `timeline.Moment`, best first; an edge the fine curve does not cross
        near it stays where it was.

    Raises:
        ValueError: for a non-positive `clip_seconds`, `stride_seconds`, `num_frames` or
            `batch_size`, or a query that is not a finite, non-zero (D,) array;
            `VideoDecodeError` for a file that cannot be read.
    """
    for name, value in (("clip_seconds", clip_seconds), ("stride_seconds", stride_seconds),
                        ("num_frames", num_frames), ("batch_size", batch_size)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
                or not math.isfinite(value) or value <= 0:  # fmt: skip
            raise ValueError(f"{name} must be a positive number. Received: {name}={value!r}")
    relative = check_relative(relative)
    query = np.asarray(query, np.float32).reshape(-1)
    norm = float(np.linalg.norm(query)) if np.isfinite(query).all() else 0.0
    if not norm:
        held = "NaN or inf" if not np.isfinite(query).all() else "only zeros"
        raise ValueError(f"query must be a finite, non-zero embedding. Received: an array "
                         f"of {query.size} values holding {held}")  # fmt: skip
    query = query / norm
    moments = list(moments)
    if not moments:
        return []
    if encoder is None:
        from ..runtime import Encoder  # Keras only here

        encoder = Encoder(model)
    sampling = Sampling(int(num_frames), size)
    fine = stride_seconds / MOMENT_REFINE_DIVISOR
    length = clip_seconds * MOMENT_REFINE_WINDOW
    reach = length / 2 + MOMENT_REFINE_MARGIN * stride_seconds
    embed = _Embedder(model, encoder, query, int(batch_size))
    refined = []
    for path in dict.fromkeys(m.path for m in moments):  # each file scanned once
        video = _Video(path, sampling)
        own = [m for m in moments if m.path == path]
        # A few moments at a time: their edge windows' frames are held together (uint8
        # until a model batch is built), so memory does not grow with top_k.
        for first in range(0, len(own), MOMENT_REFINE_GROUP):
            group = own[first : first + MOMENT_REFINE_GROUP]
            placed = _placed(video, group, embed, length, reach, fine, relative, shots)
            whole, _ = embed(video, [video.window_between(a, b) for a, b in placed])
            refined += [Moment(path, a, b, float(s))
                        for (a, b), s in zip(placed, whole, strict=True)]  # fmt: skip
    refined.sort(key=lambda m: (-m.score, m.path, m.start_s))
    return refined


def _placed(video: _Video, moments: list[Moment], embed: _Embedder, length: float,
            reach: float, fine: float, relative: float,
            shots: bool) -> list[tuple[float, float]]:  # fmt: skip
    """Each moment's refined (start, end): both edges of all `moments` (of one file) in one
    decoding pass. An edge at the video's start or end has nothing beyond it to tell the
    moment from: it stays."""
    edges = [[[] if _at_boundary(t, video.duration, fine) else
              [video.window(c, length) for c in _centres(t, reach, fine)]
              for t in (m.start_s, m.end_s)] for m in moments]  # fmt: skip
    windows = [span for pair in edges for spans in pair for span in spans]
    scores, vectors = embed(video, windows) if windows else (None, None)
    placed, used = [], 0
    for moment, pair in zip(moments, edges, strict=True):
        found = []
        sides = ((pair[0], moment.start_s, True), (pair[1], moment.end_s, False))
        for spans, edge, up in sides:
            part = slice(used, used + len(spans))
            used += len(spans)
            found.append(_crossing(_middles(spans), scores[part], vectors[part], edge,
                                   relative, up) if spans else edge)  # fmt: skip
        start, end = found
        if shots:
            start, end = _snapped(video.path, start, end, MOMENT_SNAP_STRIDES * fine,
                                  video.duration)  # fmt: skip
        start, end = max(0.0, start), min(end, video.duration)
        if not end > start:  # the edges crossed (a moment shorter than the fine stride)
            start, end = moment.start_s, moment.end_s
        placed.append((start, end))
    return placed


def _centres(edge: float, reach: float, step: float) -> np.ndarray:
    """Window centres every `step` seconds within `reach` of `edge`, ascending."""
    count = math.floor(reach / step + TIME_SLACK_S)
    return edge + step * np.arange(-count, count + 1)


def _at_boundary(edge: float, duration: float, fine: float) -> bool:
    """Whether an edge is at the video's start or end (within half a fine stride)."""
    return edge <= fine / 2 or edge >= duration - fine / 2


def _middles(spans: list[tuple[float, float]]) -> np.ndarray:
    return np.array([(a + b) / 2 for a, b in spans])


def _crossing(centres: np.ndarray, scores: np.ndarray, vectors: np.ndarray, edge: float,
              relative: float, up: bool) -> float:  # fmt: skip
    """Where the fine curve crosses its threshold, going from its worst window (outside)
    to its best (inside): rising into the moment when `up`, falling out of it otherwise;
    `edge` if the two are on the wrong sides or alike.

    Windows a few frames apart score unevenly (which frames each samples), so the curve
    crosses the threshold back and forth near the edge; counting the windows below it
    between the two ends places the edge where a monotonic curve would cross, as the
    median does among noisy values."""
    inside, outside = int(np.argmax(scores)), int(np.argmin(scores))
    if not scores[inside] > scores[outside] or (outside < inside) != up:
        return edge  # flat, or no way from outside to inside on this side
    threshold = mixed_score(float(scores[inside]), float(scores[outside]),
                            float(vectors[inside] @ vectors[outside]), relative)  # fmt: skip
    if threshold >= scores[inside]:  # clipped to the best window: nothing rises above it
        return edge
    lo, hi = sorted((inside, outside))
    times, run = centres[lo : hi + 1], scores[lo : hi + 1]
    below = int((run <= threshold).sum())
    k = below if up else len(run) - below  # windows before the crossing
    k = min(max(k, 1), len(run) - 1)  # a pair of windows to cross between, whatever rounding
    a, b = run[k - 1], run[k]
    if min(a, b) <= threshold < max(a, b):  # the straddling pair: interpolate
        share = (threshold - a) / (b - a)
    else:
        share = 0.5
    return float(times[k - 1] + share * (times[k] - times[k - 1]))


def mixed_score(inside: float, outside: float, between: float, share: float) -> float:
    """The score of a window `share` of which is the moment: its embedding taken as the
    normalised mix of the inside and outside windows' (unit) embeddings, whose cosine is
    `between`, and whose scores are `inside` and `outside`.

    Embeddings of unrelated content are far from orthogonal, so the mix's norm is well
    under 1 and a half-inside window scores above the arithmetic midpoint: a threshold
    there would put the edges outside the moment.
    """
    norm_sq = share**2 + (1 - share) ** 2 + 2 * share * (1 - share) * between
    mixed = (share * inside + (1 - share) * outside) / math.sqrt(max(norm_sq, 1e-12))
    return float(np.clip(mixed, outside, inside))


def _snapped(path: str, start: float, end: float, tolerance: float,
             duration: float) -> tuple[float, float]:  # fmt: skip
    """Each edge on the nearest shot cut within `tolerance`, looking for cuts only around
    it (from `MOMENT_SNAP_LEAD_S` earlier: the detector takes no cut in its first frames,
    a shot shorter than its minimum being none); an edge at the video's start or end
    stays."""
    from ..video.shots import shot_cuts, snap  # the `shots` extra, only when asked

    placed = []
    for t in (start, end):
        if t <= 0 or t >= duration:
            placed.append(t)
            continue
        cuts = shot_cuts(path, max(0.0, t - tolerance - MOMENT_SNAP_LEAD_S),
                         min(t + 2 * tolerance, duration))  # fmt: skip
        placed.append(snap(t, cuts, tolerance))
    return placed[0], placed[1]


class _Video:
    """One file's frame times (a packet scan, nothing decoded) and its windows' frames."""

    def __init__(self, path: str, sampling: Sampling):
        self.path, self.sampling = path, sampling
        self.index = scan(path)
        fps = self.index.fps or 25.0
        times = self.index.seconds()
        self.times = np.arange(self.index.count) / fps if times is None else times
        self.duration = video_duration(self.times, fps)

    def window(self, centre: float, length: float) -> tuple[float, float]:
        """A window of `length` seconds centred at `centre`, moved inside the video (a
        window past an end would see fewer seconds than the coarse ones did)."""
        start = min(max(0.0, centre - length / 2), max(0.0, self.duration - length))
        return self.window_between(start, start + length)

    def window_between(self, start: float, end: float) -> tuple[float, float]:
        return max(0.0, start), min(end, self.duration)

    def indices(self, span: tuple[float, float]) -> np.ndarray:
        """The frames a window samples: of those that start inside it, as
        `video.sampling.plan_windows` picks them (the frame on screen if none does)."""
        lo = int(np.searchsorted(self.times, span[0] - TIME_SLACK_S, side="left"))
        hi = int(np.searchsorted(self.times, span[1] - TIME_SLACK_S, side="left"))
        if hi <= lo:
            lo = min(max(lo - 1, 0), len(self.times) - 1)
            hi = lo + 1
        picked, _ = choose(hi - lo, self.sampling.num_frames, False)
        return picked + lo

    def frames(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """The wanted frames, resized: seeking to each one's keyframe when that decodes
        fewer frames than streaming from the start up to the last one."""
        transform = self.sampling.transform()
        kept = None
        if seek_cost(self.index, wanted) < int(wanted.max()) + 1:
            kept = seek_frames(self.path, wanted, transform, self.index)
        if kept is None:
            kept, _ = stream_frames(self.path, wanted, transform)
        return kept


class _Embedder:
    """Windows of a video → their cosine similarity to the query and their unit
    embeddings, in batches."""

    def __init__(self, model, encoder, query: np.ndarray, batch_size: int):
        self.model, self.encoder, self.query, self.batch_size = model, encoder, query, batch_size

    def __call__(self, video: _Video,
                 spans: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        from .embedding import select

        picks = [video.indices(span) for span in spans]
        kept = video.frames(np.unique(np.concatenate(picks)))
        if not kept:
            from ..video.decode import VideoDecodeError

            raise VideoDecodeError(video.path, "no decodable frame where the moments are")
        vectors = []
        for start in range(0, len(picks), self.batch_size):
            clips = np.stack([_clip(kept, p) for p in picks[start : start + self.batch_size]])
            outputs = self.encoder.video(as_model_input(clips))
            vectors.append(np.asarray(select(self.model, outputs, "video"), np.float32))
        vectors = np.concatenate(vectors)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors @ self.query, vectors


def _clip(kept: dict[int, np.ndarray], picked: np.ndarray) -> np.ndarray:
    """A window's frames; a frame the decoder did not give is its nearest kept one."""
    have = np.array(sorted(kept))
    nearest = have[np.abs(have[:, None] - picked[None, :]).argmin(axis=0)]
    return np.stack([kept[int(i)] for i in nearest])
