"""Moment retrieval (Charades-STA): a text query → the span of its video that it describes.

Each video is cut into overlapping windows (`window_spans`, as `iter_clips` cuts them),
each window embedded once through the evaluation cache (a window is a `Clip` span, so a
re-run embeds nothing). A query's curve over its video's windows is its cosine with each
window, centred on the mean of every window of the dataset (as an index of these videos
centres its curves: `apps/index/moments.py`); its top moment is the peak grown into a
span at half height (`timeline.moments_of`, the moments code of `videoprism moments`),
optionally refined by embedding finer windows around its edges (`refine.refine`). The
top moment is scored against the annotated span by temporal IoU (`metrics.temporal_iou`):
R@1 at each IoU threshold of `EVAL_MOMENT_IOUS` and the mean IoU, with bootstrap intervals
over the queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ...constants import (
    EVAL_BOOTSTRAP_SAMPLES,
    EVAL_INTERVAL_LEVEL,
    EVAL_MOMENT_CLIP_SECONDS,
    EVAL_MOMENT_IOUS,
    EVAL_MOMENT_STRIDE_SECONDS,
    MOMENT_RELATIVE,
)
from ..timeline import Curve, centred_scores, moments_of
from . import metrics
from .runs import FAILED_PROTOCOL, make_task_record, resolved_sampling

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from ...tokenizer import VideoPrismTokenizer
    from .cache import EmbeddingCache
    from .datasets import Clip, Dataset


@dataclass(frozen=True, eq=False)
class Windows:
    """One video's windows and their embeddings, sorted by start.

    Attributes:
        path: str. The video.
        start_s: (W,) float array. Each window's start in seconds.
        end_s: (W,) float array. Each window's end in seconds.
        vectors: (W, D) float array. Each window's embedding.
    """

    path: str
    start_s: np.ndarray = field(repr=False)
    end_s: np.ndarray = field(repr=False)
    vectors: np.ndarray = field(repr=False)


def window_spans(duration_s: float, clip_seconds: float, stride_seconds: float,
                 fps: float = 0.0) -> list[tuple[float, float]]:  # fmt: skip
    """The windows [k·stride, k·stride + clip) of a video of `duration_s` seconds, the
    last ones cut back to its end: the count `video.sampling.count_windows` gives (as
    `iter_clips` cuts a file), from the container's stated duration and frame rate (no
    frame decoded).

    Args:
        duration_s: float. The video's length in seconds; positive.
        clip_seconds: float. The windows' length; positive.
        stride_seconds: float. The windows' step; positive.
        fps: float. The frame rate (0: unknown): the last frame starts one frame before
            the end, and no window starts after it.

    Returns:
        list of (start_s, end_s), by start; at least one.
    """
    from ...video.sampling import count_windows

    for name, value in (("duration_s", duration_s), ("clip_seconds", clip_seconds),
                        ("stride_seconds", stride_seconds)):  # fmt: skip
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds. "
                             f"Received: {name}={value!r}")  # fmt: skip
    last_start = duration_s - (1.0 / fps if fps > 0 else 0.0)
    count = count_windows(duration_s, max(last_start, 0.0), clip_seconds, stride_seconds)
    return [(k * stride_seconds, min(k * stride_seconds + clip_seconds, duration_s))
            for k in range(count)]  # fmt: skip


def plan_windows(clips: Sequence[Clip], clip_seconds: float, stride_seconds: float):
    """Every video's windows as `Clip` spans, for the cache.

    Args:
        clips: sequence of `Clip`. Whole videos.
        clip_seconds: float. The windows' length.
        stride_seconds: float. The windows' step.

    Returns:
        (windows, owner, failures): the windows' `Clip`s, each one's position in `clips`
        ((N,) int array), and (path, reason) for the videos whose length could not be
        read (they have no windows).
    """
    from ...video.decode import stated_timing
    from .datasets import Clip

    windows, owner, failures = [], [], []
    for position, clip in enumerate(clips):
        try:
            duration, fps = stated_timing(clip.path)
        except (ValueError, OSError) as err:
            failures.append((clip.path, str(err)))
            continue
        if not duration > 0:
            failures.append((clip.path, "the container states no duration"))
            continue
        for start, end in window_spans(duration, clip_seconds, stride_seconds, fps):
            windows.append(Clip(clip.path, start, end))
            owner.append(position)
    return windows, np.asarray(owner, np.int64), failures


def top_moments(videos: Sequence[Windows | None], queries: ArrayLike,
                query_video: Sequence[int], *,
                relative: float = MOMENT_RELATIVE) -> np.ndarray:  # fmt: skip
    """Each query's top moment in its own video.

    Args:
        videos: sequence of `Windows` (None: a video that could not be read).
        queries: (Q, D) array. The queries' embeddings.
        query_video: Q ints. Each query's video, a position in `videos`.
        relative: float. The span's threshold between the curve's median (0) and its peak
            (1), as `timeline.moments_of`. Defaults to `MOMENT_RELATIVE` (half height).

    Returns:
        (Q, 2) float array of (start_s, end_s); NaN for a query whose video is None. A
        flat curve (nothing rises above its median) predicts the whole video: it does not
        say where the moment is.
    """
    queries = np.asarray(queries, np.float32)
    if queries.ndim != 2 or len(queries) != len(query_video):
        raise ValueError(f"queries must be (Q, D) with one row per query_video entry. "
                         f"Received: shape {queries.shape} and {len(query_video)} "
                         f"entries")  # fmt: skip
    held = [v for v in videos if v is not None]
    if not held:
        return np.full((len(queries), 2), np.nan)
    # Centred on every window of the dataset, as an index of these videos would centre.
    mean = np.concatenate([v.vectors for v in held]).astype(np.float64).mean(axis=0)
    mean = mean.astype(np.float32)
    spans = np.full((len(queries), 2), np.nan)
    for q, v in enumerate(query_video):
        video = videos[int(v)]
        if video is None:
            continue
        scores = centred_scores(video.vectors, queries[q], mean)
        curve = Curve(video.path, video.start_s, video.end_s, scores)
        found = moments_of([curve], 1, relative=relative)
        if found:
            spans[q] = found[0].start_s, found[0].end_s
        else:
            spans[q] = float(video.start_s[0]), float(video.end_s.max())
    return spans


def group_windows(clips: Sequence[Clip], windows: Sequence[Clip], owner: np.ndarray,
                  vectors: np.ndarray, ok: np.ndarray) -> list[Windows | None]:  # fmt: skip
    """The cache's window vectors (rows of the ok windows, in window order) grouped into
    each video's `Windows`; None for a video none of whose windows could be read."""
    ok = np.asarray(ok, bool)
    rows = np.full(len(windows), -1)
    rows[ok] = np.arange(int(ok.sum()))
    grouped: list[Windows | None] = []
    for position, clip in enumerate(clips):
        mine = np.flatnonzero((owner == position) & ok)
        if not len(mine):
            grouped.append(None)
            continue
        mine = mine[np.argsort([windows[i].start_s for i in mine], kind="stable")]
        grouped.append(Windows(clip.path, np.array([windows[i].start_s for i in mine]),
                               np.array([windows[i].end_s for i in mine]),
                               np.asarray(vectors[rows[mine]], np.float32)))  # fmt: skip
    return grouped


def score(spans: ArrayLike, truth: Sequence[tuple[float, float]], *,
          bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0,
          level: float = EVAL_INTERVAL_LEVEL,
          ) -> tuple[dict[str, float], dict[str, tuple[float, float]], np.ndarray]:  # fmt: skip
    """R@1 at `EVAL_MOMENT_IOUS` and mIoU (fractions) of the queries with a prediction
    (rows of `spans` without NaN), and their bootstrap intervals over those queries
    (`bootstrap` 0: none).

    Args:
        spans: (Q, 2) array. Each query's predicted (start_s, end_s); NaN: not scored.
        truth: Q (start_s, end_s) pairs. The annotated spans.
        bootstrap: int. Resamples of the scored queries (0: no intervals). Defaults to
            `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The resamples' seed. Defaults to 0.
        level: float. The intervals' coverage. Defaults to `EVAL_INTERVAL_LEVEL`.

    Returns:
        (metrics, intervals, ious): dicts by metric name, and each scored query's IoU.
    """
    spans = np.asarray(spans, np.float64)
    used = ~np.isnan(spans).any(axis=1)
    if not used.any():
        raise ValueError("no query could be scored: none of their videos could be read")
    iou = metrics.temporal_iou(spans[used], np.asarray(truth, np.float64)[used])
    found = metrics.moment_recall(iou, EVAL_MOMENT_IOUS)
    intervals = {
        name: metrics.bootstrap_interval(
            lambda idx, name=name: metrics.moment_recall(iou[idx], EVAL_MOMENT_IOUS)[name],
            len(iou), samples=bootstrap, level=level, seed=seed)
        for name in found if bootstrap
    }  # fmt: skip
    return found, intervals, iou


def run_moments(model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer, dataset: Dataset,
                cache: EmbeddingCache, *, clip_seconds: float = EVAL_MOMENT_CLIP_SECONDS,
                stride_seconds: float = EVAL_MOMENT_STRIDE_SECONDS, batch_size: int = 4,
                num_frames: int | None = None, size: int | tuple[int, int] | None = None,
                ray: bool | str | None = None, progress: bool = True,
                bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0, refine: bool = False,
                model_info: dict | None = None, encoder: Encoder | None = None,
                log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Moment retrieval on a dataset of task "moments": each query's top moment in its
    video, scored by temporal IoU with the annotated span.

    Args:
        model: `VideoPrismBackbone`. An LvT model (text and video towers).
        tokenizer: `VideoPrismTokenizer`. Its tokenizer.
        dataset: `datasets.Dataset` with task "moments": whole videos, and `queries`,
            `query_clip` and `spans` (seconds).
        cache: `cache.EmbeddingCache`. Where the window embeddings (and the queries')
            are kept: a re-run with the same windows and sampling embeds nothing.
        clip_seconds: float. The windows' length. Defaults to `EVAL_MOMENT_CLIP_SECONDS`
            (suited to Charades-STA's half-minute videos).
        stride_seconds: float. The windows' step. Defaults to
            `EVAL_MOMENT_STRIDE_SECONDS`.
        batch_size: int. Windows per model call. Defaults to 4.
        num_frames: int or None. Frames per window. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        ray: None, True (a local Ray instance) or an address: where windows are embedded.
            Defaults to None.
        progress: bool. Show progress bars. Defaults to True.
        bootstrap: int. Resamples of the queries for the intervals (at
            `EVAL_INTERVAL_LEVEL`; 0: none). Defaults to `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The resamples' seed. Defaults to 0.
        refine: bool. Place each top moment's edges again on finer windows
            (`refine.refine`); these are embedded on every run (not cached). Defaults to
            False.
        model_info: dict or None. The record's "model" (`results.model_info`). Defaults
            to None: the model's name, its dtype policy and the cache's key.
        encoder: `runtime.Encoder` or None. The compiled model calls. Defaults to None.
        log: callable or None. Told, in a line, how many windows were embedded and read
            from the cache, and how many videos could not be read. Defaults to None.

    Returns:
        dict: the result record (`results.make_record`), metrics "R@1_IoU<t>" for each
        threshold t of `EVAL_MOMENT_IOUS` and "mIoU", as fractions; "items" counts videos;
        the queries used and left out (their video unreadable) are in "settings".

    Raises:
        ValueError: if `dataset` is not a moments dataset, holds no query, or none of
            its videos can be read.
    """
    if dataset.task != "moments" or not dataset.queries:
        raise ValueError(f"dataset must be a moments dataset (Charades-STA) with queries. "
                         f"Received: task {dataset.task!r} with {len(dataset.queries)} "
                         f"queries from {dataset.annotations}")  # fmt: skip
    num_frames, size = resolved_sampling(model, num_frames, size)
    windows, owner, unreadable = plan_windows(dataset.clips, clip_seconds, stride_seconds)
    embedded = cache.videos(model, windows, kind="video", num_frames=num_frames, size=size,
                            batch_size=batch_size, ray=ray, progress=progress,
                            encoder=encoder)  # fmt: skip
    videos = group_windows(dataset.clips, windows, owner, embedded.vectors, embedded.ok)
    # A video fails when none of its windows could be read (a window past a stated
    # duration longer than the frames is one failed window, not a failed video).
    failed = [clip.path for clip, v in zip(dataset.clips, videos, strict=True) if v is None]
    lost = len(windows) - int(np.asarray(embedded.ok, bool).sum())
    if log:
        reused = len(windows) - lost - embedded.embedded
        log(f"windows: {embedded.embedded} embedded, {max(reused, 0)} from the cache"
            + (f", {lost} could not be read" if lost else "")
            + (f"; {len(failed)} video(s) could not be read (first: {failed[0]}: "
               f"{_reason(failed[0], [*unreadable, *embedded.failures])})"
               if failed else ""))  # fmt: skip
    if len(failed) == len(videos):
        raise ValueError(f"{dataset.annotations}: none of its {len(videos)} videos could be "
                         f"read (first: {failed[0]}: "
                         f"{_reason(failed[0], [*unreadable, *embedded.failures])})")  # fmt: skip
    text = cache.texts(model, tokenizer, dataset.queries, progress=progress, encoder=encoder)
    spans = top_moments(videos, text, dataset.query_clip)
    if refine:
        spans = _refined(model, videos, text, dataset.query_clip, spans, clip_seconds,
                         stride_seconds, num_frames, size, batch_size, encoder)  # fmt: skip
    found, intervals, iou = score(spans, dataset.spans, bootstrap=bootstrap, seed=seed)
    settings = {"queries": len(dataset.queries), "queries_used": len(iou),
                "queries_failed": len(dataset.queries) - len(iou), "refine": bool(refine),
                "relative": MOMENT_RELATIVE, "ious": list(EVAL_MOMENT_IOUS),
                "scores": "cosine, centred on the mean of every window of the dataset",
                "moment": "the top moment of timeline.moments_of; a flat curve: the whole "
                          "video",
                "windows": len(windows), "windows_failed": lost,
                "embedded": int(embedded.embedded), "failed": FAILED_PROTOCOL,
                "failed_videos": failed}  # fmt: skip
    return make_task_record("moments", dataset, found, intervals, model, cache, model_info,
                            num_frames, size, bootstrap, seed, settings,
                            sum(v is None for v in videos),
                            sampling={"clip_seconds": clip_seconds,
                                      "stride_seconds": stride_seconds})  # fmt: skip


def _reason(path: str, failures: Sequence[tuple[str, str]]) -> str:
    """Why `path` could not be read: the first failure recorded for it."""
    return next((why for where, why in failures if where == path), "no window read")


def _refined(model, videos, text, query_video, spans, clip_seconds, stride_seconds,
             num_frames, size, batch_size, encoder) -> np.ndarray:  # fmt: skip
    """Each found moment's edges placed again on finer windows (`refine.refine`)."""
    from ..refine import refine
    from ..timeline import Moment

    if encoder is None:  # one for every query: each new one compiles the model again
        from ...runtime import Encoder

        encoder = Encoder(model)
    refined = np.array(spans, np.float64)
    for q, v in enumerate(query_video):
        if videos[int(v)] is None:
            continue
        coarse = Moment(videos[int(v)].path, float(spans[q, 0]), float(spans[q, 1]), 0.0)
        (moment,) = refine(model, [coarse], text[q], clip_seconds=clip_seconds,
                           stride_seconds=stride_seconds, num_frames=num_frames, size=size,
                           batch_size=batch_size, encoder=encoder)  # fmt: skip
        refined[q] = moment.start_s, moment.end_s
    return refined
