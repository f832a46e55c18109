"""Zero-shot text↔video retrieval on a captioned dataset (MSR-VTT, VATEX, ActivityNet
Captions, or a CSV of your own): the metrics from embeddings, and the whole run.

Every caption is a text→video query whose one relevant clip is the clip it describes;
every clip is a video→text query whose relevant captions are all of its own (found by
any of them). How many captions a clip has is the dataset's protocol (MSR-VTT 1k-A: one;
VATEX: its ten English ones; ActivityNet: one paragraph), so the adapters decide it.

A clip that cannot be decoded is left out of the evaluation with its captions, and counted
(the record's items.failed), as missing videos are (items.missing): neither is scored as
a miss, and the record says so.

The bootstrap intervals resample clips, both ways: a v2t query is a clip, and the t2v
queries are resampled a clip at a time, each with all its captions (a cluster bootstrap:
VATEX's ten captions of one video are not ten independent queries, and resampling them
one by one would make the interval too narrow). The gallery is held fixed: every rank is
against all the clips (or captions) of the evaluation, as the point estimate's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ...constants import EVAL_BOOTSTRAP_SAMPLES, EVAL_INTERVAL_LEVEL
from . import metrics
from .runs import FAILED_PROTOCOL, make_task_record, resolved_sampling, tell_videos

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from ...tokenizer import VideoPrismTokenizer
    from .cache import EmbeddingCache
    from .datasets import Dataset

# What the record says of how the intervals resample.
BOOTSTRAP_PROTOCOL = ("clips are resampled, each with all its captions (t2v: a cluster "
                      "bootstrap); the gallery is held fixed")  # fmt: skip


def retrieval_ranks(videos: ArrayLike, texts: ArrayLike,
                    caption_clip: Sequence[int]) -> dict[str, np.ndarray]:  # fmt: skip
    """Each query's rank, both ways.

    Args:
        videos: (N_clips, D) array. L2-normalised clip embeddings.
        texts: (N_captions, D) array. L2-normalised caption embeddings.
        caption_clip: N_captions ints. The clip each caption describes.

    Returns:
        {"t2v": (N_captions,) ranks, "v2t": ranks of the clips with at least one caption}.
    """
    videos, texts = np.asarray(videos, np.float32), np.asarray(texts, np.float32)
    caption_clip = _checked(videos, texts, caption_clip)
    scores = texts @ videos.T  # (captions, clips)
    own = _own_captions(caption_clip, len(videos))
    described = [clip for clip in range(len(videos)) if len(own[clip])]
    return {
        "t2v": metrics.ranks(scores, [[clip] for clip in caption_clip]),
        "v2t": metrics.ranks(scores.T[described], [own[clip] for clip in described]),
    }


def _checked(videos: np.ndarray, texts: np.ndarray, caption_clip: Sequence[int]) -> np.ndarray:
    caption_clip = np.asarray(caption_clip, np.int64)
    if videos.ndim != 2 or texts.ndim != 2 or videos.shape[1] != texts.shape[1]:
        raise ValueError("videos, texts: expected (clips, D) and (captions, D) arrays of one "
                         f"width. Received: {videos.shape} and {texts.shape}")  # fmt: skip
    if caption_clip.shape != (len(texts),):
        raise ValueError(f"caption_clip: expected one clip index per caption ({len(texts)}). "
                         f"Received: {caption_clip.shape[0]}")  # fmt: skip
    if len(caption_clip) and not 0 <= caption_clip.min() <= caption_clip.max() < len(videos):
        raise ValueError(f"caption_clip: expected clip indices in [0, {len(videos)}). "
                         f"Received: {caption_clip.min()}..{caption_clip.max()}")  # fmt: skip
    return caption_clip


def _own_captions(caption_clip: np.ndarray, clips: int) -> list[np.ndarray]:
    """Each clip's captions (their indices, in order)."""
    order = np.argsort(caption_clip, kind="stable")
    bounds = np.searchsorted(caption_clip[order], np.arange(clips + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(clips)]


def retrieval_metrics(videos: ArrayLike, texts: ArrayLike, caption_clip: Sequence[int], *,
                      bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0,
                      level: float = EVAL_INTERVAL_LEVEL,
                      ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:  # fmt: skip
    """R@1/5/10 (fractions in [0, 1]), median and mean rank both ways, and their bootstrap
    intervals.

    Both directions' intervals resample the clips that have captions, with the gallery
    held fixed: v2t's queries are those clips, and t2v takes each resampled clip's
    captions all together (a cluster bootstrap).

    Args:
        videos: (N_clips, D) array. L2-normalised clip embeddings.
        texts: (N_captions, D) array. L2-normalised caption embeddings.
        caption_clip: N_captions ints. The clip each caption describes.
        bootstrap: int. Resamples (0: no intervals). Defaults to `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The resamples' seed. Defaults to 0.
        level: float. The intervals' coverage. Defaults to `EVAL_INTERVAL_LEVEL`.

    Returns:
        (metrics, intervals), keyed `t2v_R@1` … `v2t_MnR`.
    """
    rank = retrieval_ranks(videos, texts, caption_clip)
    caption_clip = np.asarray(caption_clip, np.int64)
    own = [found for found in _own_captions(caption_clip, len(videos)) if len(found)]
    # The t2v ranks grouped by clip (a described clip's captions are one run), so a
    # resample of clips gathers its captions' ranks by index arithmetic.
    grouped = rank["t2v"][np.concatenate(own)]
    counts = np.array([len(found) for found in own], np.int64)
    starts = np.cumsum(counts) - counts

    def captions_of(picked: np.ndarray) -> np.ndarray:
        lengths = counts[picked]
        offsets = np.repeat(starts[picked] - (np.cumsum(lengths) - lengths), lengths)
        return grouped[offsets + np.arange(int(lengths.sum()))]

    gather = {"t2v": captions_of, "v2t": lambda picked: rank["v2t"][picked]}
    values, intervals = {}, {}
    for direction in ("t2v", "v2t"):
        for name, value in metrics.retrieval(rank[direction]).items():
            values[f"{direction}_{name}"] = value
            if bootstrap:
                statistic = lambda picked, g=gather[direction], n=name: (  # noqa: E731
                    metrics.retrieval(g(picked))[n]
                )
                intervals[f"{direction}_{name}"] = metrics.bootstrap_interval(
                    statistic, len(own), samples=bootstrap, level=level, seed=seed
                )
    return values, intervals


def run_retrieval(model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer, dataset: Dataset,
                  cache: EmbeddingCache, *, batch_size: int = 4, num_frames: int | None = None,
                  size: int | tuple[int, int] | None = None, ray: bool | str | None = None,
                  progress: bool = True, bootstrap: int = EVAL_BOOTSTRAP_SAMPLES,
                  seed: int = 0, encoder: Encoder | None = None,
                  model_info: dict | None = None,
                  log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Embeds the dataset's clips and captions (through `cache`: what it holds is not
    embedded again) and measures retrieval both ways.

    Args:
        model: `VideoPrismBackbone`. A video-text (LvT) one.
        tokenizer: `VideoPrismTokenizer`. Its tokenizer.
        dataset: `Dataset`. A retrieval dataset (`read_dataset`).
        cache: `EmbeddingCache`. Where embeddings are kept, for this model and dataset.
        batch_size: int. Videos embedded at a time. Defaults to 4.
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        ray: None, True (a local Ray instance) or an address. Embed on Ray. Defaults to
            None.
        progress: bool. Progress bars. Defaults to True.
        bootstrap: int. Resamples of the clips for the intervals (0: none). Defaults to
            `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The bootstrap's seed. Defaults to 0.
        encoder: `Encoder` or None. The compiled model calls, to share. Defaults to None.
        model_info: dict or None. The record's model (`results.model_info`). Defaults to
            None: the model's name and dtype, the cache's model key.
        log: callable or None. Told, in a line, how many videos were embedded and read
            from the cache. Defaults to None.

    Returns:
        The result record (`results.make_record`).
    """
    if dataset.task != "retrieval" or not dataset.captions:
        raise ValueError(f"dataset: expected a retrieval dataset (clips with captions). "
                         f"Received: {dataset.name}, a {dataset.task} dataset with "
                         f"{len(dataset.captions)} captions")  # fmt: skip
    frames, frame_size = resolved_sampling(model, num_frames, size)
    cached = cache.videos(model, dataset.clips, kind="video", num_frames=frames, size=frame_size,
                          batch_size=batch_size, ray=ray, progress=progress,
                          encoder=encoder)  # fmt: skip
    ok = np.asarray(cached.ok, bool)
    if not ok.any():
        raise ValueError(f"{dataset.annotations}: none of its {len(ok)} videos could be read "
                         f"(first: {cached.failures[0][0]}: {cached.failures[0][1]})")  # fmt: skip
    caption_clip = np.asarray(dataset.caption_clip, np.int64)
    kept = ok[caption_clip]
    position = np.cumsum(ok) - 1  # a clip's row among those read
    captions = [c for c, keep in zip(dataset.captions, kept, strict=True) if keep]
    texts = cache.texts(model, tokenizer, captions, progress=progress, encoder=encoder)
    tell_videos(log, cached, len(ok))
    values, intervals = retrieval_metrics(cached.vectors, texts, position[caption_clip[kept]],
                                          bootstrap=bootstrap, seed=seed)  # fmt: skip
    settings = {"captions": len(captions), "clips": int(ok.sum()), "failed": FAILED_PROTOCOL,
                "scores": "cosine similarity", "bootstrap": BOOTSTRAP_PROTOCOL}  # fmt: skip
    return make_task_record("retrieval", dataset, values, intervals, model, cache, model_info,
                            frames, frame_size, bootstrap, seed, settings,
                            len(cached.failures))  # fmt: skip
