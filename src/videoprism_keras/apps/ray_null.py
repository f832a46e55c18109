"""A null pipeline, to measure what the Ray pipeline itself can carry (its commit ceiling):
clips that need no decoding and a model that returns vectors at once.

    options = RayOptions(decoder=functools.partial(blank_rows, clips=500),
                         encoder=NullEncoder, batch_size=512)
    index_on_ray(model, videos, index, clip_seconds=1.0, options=options)

Every file named is read as `clips` windows of blank frames (the file itself is not opened:
any file will do); the actors' model returns the same unit-norm direction for every clip.
What is left is the pipeline: Ray Data's stages, the object store, the posters, the
driver's bookkeeping and its commits (`benchmarks/ray_pipeline.py --null-model`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..constants import RAY_NULL_DIM
from ..runtime import Encoder
from ..video.clip_rows import held_keys
from ..video.times import time_key


def blank_rows(item: dict, *, num_frames: int, size: int | Sequence[int],
               clip_seconds: float | None = None, stride_seconds: float | None = None,
               shots: bool = False, clips: int = 100) -> Iterator[dict]:  # fmt: skip
    """`clip_rows.decode_rows` without decoding: `clips` windows of `clip_seconds` (one
    whole video without it) of blank uint8 frames, the held ones left out as there (the
    last one still comes, to tell the count). `shots` is ignored."""
    height, width = (size, size) if isinstance(size, int) else size
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    held = held_keys(item)
    stride = stride_seconds or clip_seconds
    count = clips if clip_seconds else 1
    base = {
        "path": item["path"],
        "file_id": item.get("file_id", ""),
        "reason": "",
        "duration_s": float(stride * (count - 1) + clip_seconds) if clip_seconds else 1.0,
    }
    for ordinal in range(count):
        start_s = ordinal * stride if clip_seconds else np.nan
        end_s = start_s + clip_seconds if clip_seconds else np.nan
        key = (time_key(start_s), time_key(end_s))
        last = ordinal == count - 1
        if key in held and not last:
            continue
        yield {
            **base,
            "status": "held" if key in held else "clip",
            "start_s": float(start_s),
            "end_s": float(end_s),
            "ordinal": ordinal,
            "last": last,
            "frames": frames,
        }


class NullEncoder(Encoder):
    """An `Encoder` that compiles nothing and returns one fixed unit-norm direction
    (`RAY_NULL_DIM` wide) for every clip, at once: the model stage's cost taken away."""

    def __init__(self, model):  # no compiled functions: the model is never run
        self.model = model
        self._vector = np.random.default_rng(0).normal(size=RAY_NULL_DIM).astype(np.float32)
        self._vector /= np.linalg.norm(self._vector)

    def video(self, pixels: np.ndarray, frame_padding_mask: np.ndarray | None = None) -> dict:
        vectors = np.broadcast_to(self._vector, (len(pixels), RAY_NULL_DIM))
        # Both outputs `embedding.select` reads: a video-only backbone's mean of the
        # features, a multimodal one's vision embeddings.
        return {"spatiotemporal_features": vectors[:, None, None, :],
                "vision_embeddings": vectors}  # fmt: skip
