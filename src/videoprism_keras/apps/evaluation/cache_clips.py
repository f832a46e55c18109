"""The clips `EmbeddingCache.videos` lacks → batches of (keys, the model's output), for
the cache to commit as they come: in process (`embedded_batches`: decoded in a background
thread while the model runs) or on Ray (`ray_batches`: decoded in CPU tasks and embedded
by model actors, the Ray pipeline's stages, `ray_pipeline.clip_dataset`; the driver gets
the batches back and commits them).

Both decode a clip with the project's video code (`clip_frames`: `sample` for a whole
video, `load_clip` for a span) to uint8 frames, made model input by `as_model_input`
(bit for bit the float frames `load_video` gives), and run the same compiled `Encoder`.
On Ray, a batch computed twice (a retried task, a replaced actor) is handed on once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...video.options import Sampling
from ...video.times import seconds_or_none

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from .datasets import Clip

__all__ = ["clip_frames", "decode_clip", "embedded_batches", "ray_address", "ray_batches"]

# A span with a start and no end runs to the video's end: `load_clip` takes finite times.
_TO_THE_END = 1e12


def clip_frames(path: str, start_s: float | None, end_s: float | None, num_frames: int,
                size: int | Sequence[int]) -> np.ndarray:  # fmt: skip
    """A clip's sampled frames, uint8 (T, H, W, 3): the whole video (`start_s` and `end_s`
    None or NaN) as `load_video` samples it, else the span as `load_clip` does.

    Raises:
        ValueError or OSError: the file cannot be read, or the span is not in it.
    """
    from ...video.api import load_clip, sample

    start, end = seconds_or_none(start_s), seconds_or_none(end_s)
    if start is None and end is None:
        return sample(path, Sampling(num_frames, size, dtype="uint8"))
    return load_clip(path, start or 0.0, _TO_THE_END if end is None else end, num_frames, size,
                     dtype="uint8")  # fmt: skip


def _decoded(clips: Sequence[Clip], sampling: Sampling,
             failures: list) -> Iterator[tuple[str, np.ndarray]]:  # fmt: skip
    """(key, uint8 frames) of each clip that can be read; the others into `failures`."""
    from ...video.loader import INPUT_ERRORS, describe_failure

    for clip in clips:
        try:
            frames = clip_frames(clip.path, clip.start_s, clip.end_s, *_frame_shape(sampling))
        except INPUT_ERRORS as err:
            failures.append((str(clip.path), describe_failure(err)))
            continue
        yield clip.key, frames


def _frame_shape(sampling: Sampling) -> tuple[int, tuple[int, int]]:
    return sampling.num_frames, sampling.size


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


def decode_clip(item: dict, *, num_frames: int, size: Sequence[int]) -> Iterator[dict]:
    """The decode stage: one clip (`item`: key, path, start_s, end_s; NaN for a whole
    video) → its row, uint8 frames, or a failure with its reason (the same columns and
    frame shape, so that both travel in one stream)."""
    from ...video.loader import INPUT_ERRORS, describe_failure

    row = {**item, "status": "clip", "reason": ""}
    try:
        row["frames"] = clip_frames(item["path"], item["start_s"], item["end_s"], num_frames,
                                    size)  # fmt: skip
    except INPUT_ERRORS as err:
        row.update(status="failed", reason=describe_failure(err),
                   frames=np.zeros((num_frames, *size, 3), np.uint8))  # fmt: skip
    yield row


def ray_batches(model: VideoPrismBackbone, clips: Sequence[Clip], sampling: Sampling,
                batch_size: int, ray: bool | str, kind: str,
                failures: list) -> Iterator[tuple[list[str], np.ndarray]]:  # fmt: skip
    """(keys, the model's `kind` of output) per batch the actors give back, each key once;
    the clips that cannot be read into `failures`."""
    from ..ray_pipeline import RayOptions, clip_dataset, quiet_data, ray_session

    options = RayOptions(batch_size=batch_size, address=ray_address(ray),
                         decoder=decode_clip)  # fmt: skip
    items = [{"key": clip.key, "path": str(clip.path), "start_s": _seconds(clip.start_s),
              "end_s": _seconds(clip.end_s)} for clip in clips]  # fmt: skip
    arguments = {"num_frames": sampling.num_frames, "size": tuple(sampling.size)}
    seen: set[str] = set()
    with ray_session(options.address) as session, quiet_data():
        dataset = clip_dataset(session, items, model, kind, False, arguments, options)
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


def _seconds(t: float | None) -> float:
    return np.nan if t is None else float(t)
