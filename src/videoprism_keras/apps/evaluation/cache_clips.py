"""The clips `EmbeddingCache.videos` lacks → batches of (keys, the model's output), for
the cache to commit as they come: in process (`embedded_batches`: decoded in a background
thread while the model runs) or on Ray (`ray_batches`: decoded in CPU tasks and embedded
by model actors, the Ray pipeline's stages, `ray_pipeline.clip_dataset`; the driver gets
the batches back and commits them).

Both decode a file's clips with the project's video code (`file_frames`: `sample` for a
whole video, one `iter_clips` pass at the spans' windows) to uint8 frames, made model
input by `as_model_input` (bit for bit the float frames `load_video` gives), and run the
same compiled `Encoder`.
On Ray, a batch computed twice (a retried task, a replaced actor) is handed on once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...video.options import Sampling
from ...video.times import seconds_or_none

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from .datasets import Clip

__all__ = ["decode_file", "embedded_batches", "file_frames", "ray_address", "ray_batches"]

# A span with a start and no end runs to the video's end (cut back to it, as any span is).
_TO_THE_END = 1e12
# A span of no length (start_s == end_s) is the frame on screen at that time: a window this
# long, in which no frame starts, takes it (`sampling._window`).
_INSTANT_S = 1e-6

# What `file_frames` gives per clip: its key, and its uint8 frames or why it has none.
Decoded = tuple[str, np.ndarray | None, str]


def file_frames(path: str, clips: Sequence[tuple[str, float | None, float | None]],
                num_frames: int, size: Sequence[int]) -> Iterator[Decoded]:  # fmt: skip
    """The clips of one file (key, start_s, end_s; None or NaN for the whole video) →
    (key, uint8 (T, H, W, 3) frames, "") or (key, None, the reason it cannot be read).

    A whole video is sampled as `load_video` samples it; the spans are cut in one decoding
    pass (`iter_clips` at these windows, as `embed_videos` cuts its own), not one pass
    each: a video's many windows (moments, paragraphs) cost one decoding. Spans ending past
    the video are cut back to it; one starting past it fails.
    """
    from ...video.api import iter_clips, sample
    from ...video.loader import INPUT_ERRORS, describe_failure

    waiting: dict[float, list[tuple[float, str]]] = {}  # start → (end, key) of the spans
    for key, start_s, end_s in clips:
        start, end = seconds_or_none(start_s), seconds_or_none(end_s)
        if start is None and end is None:
            try:
                yield key, sample(path, Sampling(num_frames, size, dtype="uint8")), ""
            except INPUT_ERRORS as err:
                yield key, None, describe_failure(err)
            continue
        start, end = start or 0.0, _TO_THE_END if end is None else end
        if start == end:
            end = start + _INSTANT_S
        if not 0 <= start < end:
            yield key, None, f"the span {start:g}–{end:g} s is not 0 <= start_s <= end_s"
            continue
        waiting.setdefault(start, []).append((end, key))
    if not waiting:
        return
    windows = sorted((start, end) for start, spans in waiting.items() for end, _ in spans)
    try:
        for clip in iter_clips(path, None, num_frames=num_frames, size=size, dtype="uint8",
                               windows=windows):  # fmt: skip
            yield _take(waiting, clip.start_s, clip.end_s), clip.frames, ""
    except INPUT_ERRORS as err:  # the file, or its rest: the spans not yet cut fail
        reason = describe_failure(err)
    else:
        reason = "the span starts past the end of the video"
    for spans in waiting.values():
        for _, key in spans:
            yield key, None, reason


def _take(waiting: dict, start: float, end: float) -> str:
    """The key of the span `iter_clips` cut as (start, end): the one ending there, or
    else one it cut back to the video's end (ending later)."""
    spans = waiting[start]
    i = next((i for i, (e, _) in enumerate(spans) if e == end), None)
    if i is None:
        i = next(i for i, (e, _) in enumerate(spans) if e > end)
    key = spans.pop(i)[1]
    if not spans:
        del waiting[start]
    return key


def _decoded(clips: Sequence[Clip], sampling: Sampling,
             failures: list) -> Iterator[tuple[str, np.ndarray]]:  # fmt: skip
    """(key, uint8 frames) of each clip that can be read, a file at a time; the others
    into `failures`."""
    for path, spans in _by_file(clips).items():
        for key, frames, reason in file_frames(path, spans, sampling.num_frames, sampling.size):
            if frames is None:
                failures.append((path, reason))
            else:
                yield key, frames


def _by_file(clips: Sequence[Clip]) -> dict[str, list[tuple[str, float | None, float | None]]]:
    """The clips grouped by file (in the order files first appear)."""
    files: dict[str, list] = {}
    for clip in clips:
        files.setdefault(str(clip.path), []).append((clip.key, clip.start_s, clip.end_s))
    return files


def embedded_batches(model, clips, sampling, batch_size, kind, encoder,
                     failures) -> Iterator[tuple[list[str], np.ndarray]]:  # fmt: skip
    """(keys, the model's `kind` of output) per batch, the clips decoded in a background
    thread while the model runs."""
    from ..embedding import in_background

    if encoder is None:
        from ...runtime import Encoder

        encoder = Encoder(model)
    batch: list = []
    for item in in_background(_decoded(clips, sampling, failures), ahead=2 * batch_size):
        batch.append(item)
        if len(batch) == batch_size:
            yield _run(model, encoder, batch, kind)
            batch = []
    if batch:
        yield _run(model, encoder, batch, kind)


def _run(model, encoder, batch, kind) -> tuple[list[str], np.ndarray]:
    from ...video.clip_rows import as_model_input
    from ..embedding import select

    outputs = encoder.video(as_model_input(np.stack([frames for _, frames in batch])))
    return [key for key, _ in batch], np.asarray(select(model, outputs, kind))


def ray_address(ray: bool | str) -> str | None:
    """`videos`' `ray` as `ray_session` takes it: True (or "local") is a new local
    instance (or this process's session), a string the cluster's address."""
    if ray is True or ray == "local":
        return None
    if isinstance(ray, str) and ray:
        return ray
    raise ValueError("ray must be None, True (a local instance) or a cluster's address "
                     f"('auto', 'host:port', 'ray://…'). Received: ray={ray!r}")  # fmt: skip


def decode_file(item: dict, *, num_frames: int, size: Sequence[int]) -> Iterator[dict]:
    """The decode stage: one file's clips (`item`: path, and `clips`, JSON [key, start_s,
    end_s] triples, null for a whole video) → a row per clip, uint8 frames, or a failure
    with its reason (the same columns and frame shape, so that both travel in one
    stream)."""
    spans = [tuple(clip) for clip in json.loads(item["clips"])]
    blank = np.zeros((num_frames, *size, 3), np.uint8)
    for key, frames, reason in file_frames(item["path"], spans, num_frames, size):
        yield {"key": key, "path": item["path"], "status": "clip" if reason == "" else "failed",
               "reason": reason, "frames": blank if frames is None else frames}  # fmt: skip


def ray_batches(model: VideoPrismBackbone, clips: Sequence[Clip], sampling: Sampling,
                batch_size: int, ray: bool | str, kind: str, failures: list,
                encoder: Encoder | None = None,
                ) -> Iterator[tuple[list[str], np.ndarray]]:  # fmt: skip
    """(keys, the model's `kind` of output) per batch the actors give back, each key once;
    the clips that cannot be read into `failures`. The actors run `encoder`'s engine and
    precision (None: Keras)."""
    from ..ray_pipeline import EngineChoice, RayOptions, clip_dataset, quiet_data, ray_session

    choice = None if encoder is None else EngineChoice.of(encoder.engine, encoder.precision)
    options = RayOptions(batch_size=batch_size, address=ray_address(ray),
                         decoder=decode_file, engine=choice)  # fmt: skip
    items = [{"path": path, "clips": json.dumps([[key, seconds_or_none(start), seconds_or_none(end)]
                                                 for key, start, end in spans])}
             for path, spans in _by_file(clips).items()]  # fmt: skip
    arguments = {"num_frames": sampling.num_frames, "size": tuple(sampling.size)}
    seen: set[str] = set()
    with ray_session(options.address) as session, quiet_data():
        dataset = clip_dataset(session, items, model, kind, False, arguments, options, model)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            status = batch["status"]
            failures += [(str(batch["path"][i]), str(batch["reason"][i]))
                         for i in np.flatnonzero(status == "failed")]  # fmt: skip
            keep = [i for i in np.flatnonzero(status == "clip") if _new(batch["key"][i], seen)]
            if keep:
                yield [str(batch["key"][i]) for i in keep], np.asarray(batch["vector"][keep])


def _new(key: Any, seen: set[str]) -> bool:
    key = str(key)
    if key in seen:
        return False
    seen.add(key)
    return True
