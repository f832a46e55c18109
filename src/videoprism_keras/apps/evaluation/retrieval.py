"""Zero-shot text↔video retrieval on a captioned dataset (MSR-VTT, VATEX, ActivityNet
Captions, or a CSV of your own): the metrics from embeddings, and the whole run.

Every caption is a text→video query whose one relevant clip is the clip it describes;
every clip is a video→text query whose relevant captions are all of its own (found by
any of them). How many captions a clip has is the dataset's protocol (MSR-VTT 1k-A: one;
VATEX: its ten English ones; ActivityNet: one paragraph), so the adapters decide it.

A clip that cannot be decoded is left out of the evaluation with its captions, and counted
(the record's items.failed), as missing videos are (items.missing): neither is scored as
a miss, and the record says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...constants import EVAL_INTERVAL_LEVEL
from . import metrics

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...tokenizer import VideoPrismTokenizer
    from .cache import EmbeddingCache
    from .datasets import Dataset

DIRECTIONS = ("t2v", "v2t")
# What the record says of clips that could not be read.
FAILED_PROTOCOL = "videos that cannot be decoded are excluded with their captions, and counted"


def retrieval_ranks(videos, texts, caption_clip: Sequence[int]) -> dict[str, np.ndarray]:
    """Each query's rank, both ways.

    Args:
        videos: (N_clips, D) array. L2-normalised clip embeddings.
        texts: (N_captions, D) array. L2-normalised caption embeddings.
        caption_clip: N_captions ints. The clip each caption describes.

    Returns:
        {"t2v": (N_captions,) ranks, "v2t": ranks of the clips with at least one caption}.
    """
    videos, texts = np.asarray(videos, np.float32), np.asarray(texts, np.float32)
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
    scores = texts @ videos.T  # (captions, clips)
    own: list[list[int]] = [[] for _ in range(len(videos))]
    for caption, clip in enumerate(caption_clip):
        own[clip].append(caption)
    described = [clip for clip in range(len(videos)) if own[clip]]
    return {
        "t2v": metrics.ranks(scores, [[clip] for clip in caption_clip]),
        "v2t": metrics.ranks(scores.T[described], [own[clip] for clip in described]),
    }


def retrieval_metrics(videos, texts, caption_clip: Sequence[int], *, bootstrap: int = 1000,
                      seed: int = 0, level: float = EVAL_INTERVAL_LEVEL,
                      ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:  # fmt: skip
    """R@1/5/10 (fractions in [0, 1]), median and mean rank both ways, and their bootstrap
    intervals.

    Each direction's interval resamples that direction's queries (captions for t2v, clips
    for v2t). `bootstrap` 0: no intervals.

    Returns:
        (metrics, intervals), keyed `t2v_R@1` … `v2t_MnR`.
    """
    values, intervals = {}, {}
    for direction, rank in retrieval_ranks(videos, texts, caption_clip).items():
        for name, value in metrics.retrieval(rank).items():
            values[f"{direction}_{name}"] = value
            if bootstrap:
                statistic = lambda picked, r=rank, n=name: metrics.retrieval(r[picked])[n]  # noqa: E731
                intervals[f"{direction}_{name}"] = metrics.bootstrap_interval(
                    statistic, len(rank), samples=bootstrap, level=level, seed=seed
                )
    return values, intervals


def run_retrieval(model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer, dataset: Dataset,
                  cache: EmbeddingCache, *, batch_size: int = 4, num_frames: int | None = None,
                  size=None, ray=None, progress: bool = True, bootstrap: int = 1000,
                  seed: int = 0, encoder=None, model_info: dict | None = None,
                  log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Embeds the dataset's clips and captions (through `cache`: what it holds is not
    embedded again) and measures retrieval both ways.

    Args:
        model: `VideoPrismBackbone`. A video-text (LvT) one.
        tokenizer: `VideoPrismTokenizer`. Its tokenizer.
        dataset: `Dataset`. A retrieval dataset (`read_dataset`).
        cache: `EmbeddingCache`. Where embeddings are kept, for this model and dataset.
        batch_size: int. Videos embedded at a time. Defaults to 4.
        num_frames, size: int or None. The sampling. Defaults to None (the model's).
        ray: None, True or an address. Embed on Ray. Defaults to None.
        progress: bool. Progress bars. Defaults to True.
        bootstrap: int. Resamples for the intervals (0: none). Defaults to 1000.
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
                "scores": "cosine similarity"}  # fmt: skip
    return make_task_record("retrieval", dataset, values, intervals, model, cache, model_info,
                            frames, frame_size, bootstrap, seed, settings,
                            len(cached.failures))  # fmt: skip


def resolved_sampling(model, num_frames, size) -> tuple[int, int | tuple[int, int]]:
    """(frames, size) as the model will sample: the given ones, else its own; the size one
    int where frames are square, else (height, width). Named in full so that the cache key
    and the record do not depend on a default."""
    from ...video import Sampling

    sampling = Sampling.for_model(model, num_frames, size)
    height, width = sampling.size
    return sampling.num_frames, height if height == width else (height, width)


def tell_videos(log: Callable[[str], None] | None, cached, clips: int) -> None:
    """Tells `log` each video that could not be read, then how many videos this run
    embedded and how many came from the cache."""
    if not log:
        return
    for path, reason in cached.failures:
        log(f"skipped {path}: {reason}")
    failed = len(cached.failures)
    reused = clips - cached.embedded - failed
    log(f"videos: {cached.embedded} embedded, {max(reused, 0)} from the cache"
        + (f", {failed} failed" if failed else ""))  # fmt: skip


def make_task_record(task, dataset, values, intervals, model, cache, model_info, frames,
                     frame_size, bootstrap, seed, settings, failed) -> dict:  # fmt: skip
    """The record of a zero-shot task (`results.make_record`), with what every task says
    the same way: the sampling, the bootstrap, the model."""
    from . import results

    if model_info is None:
        policy = getattr(model, "dtype_policy", None)
        model_info = results.model_info(source=getattr(model, "name", "model"),
                                        dtype=getattr(policy, "name", "float32"),
                                        key=getattr(cache, "model_key", ""))  # fmt: skip
    return results.make_record(
        task=task, dataset=dataset, metrics=values, intervals=intervals, model=model_info,
        sampling={"num_frames": frames, "size": frame_size},
        bootstrap={"samples": bootstrap, "level": EVAL_INTERVAL_LEVEL, "seed": seed},
        settings=settings, failed=failed,
    )  # fmt: skip
