"""Many videos → model-ready batches, decoded in background threads.

Threads (not processes) because the heavy parts release the GIL: FFmpeg decoding and
colour conversion inside PyAV, and PIL's resize. So while the model runs on one batch
the next ones are being decoded, with no pickling and no extra copies of the model.
At most `prefetch` batches are decoded ahead, which bounds memory.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .api import sample
from .decode import VideoDecodeError
from .options import Sampling

ON_ERROR = ("raise", "skip")
# What `on_error="skip"` records: a file that cannot be read (`VideoDecodeError` is a
# ValueError; PIL raises OSError) or a bad array. Anything else (a TypeError, say) is
# a bug in the calling code, and skipping every file for it would hide it.
INPUT_ERRORS = (ValueError, OSError)


def describe_failure(err: Exception) -> str:
    """Why an input failed, without its path (the caller pairs the two): a
    `VideoDecodeError` already names its file, and FFmpeg quotes it once more."""
    if isinstance(err, VideoDecodeError):
        return err.cause.replace(f": '{err.path}'", "")
    return f"{type(err).__name__}: {err}"


class VideoBatchLoader:
    """Iterate to get `{"pixel_values": (B, T, H, W, 3), "paths": [...]}` batches.

    Batches keep the input order. With `pad=True` each batch also holds
    `"frame_padding_mask"` (B, T) int32, 1 = real frame. A file that fails raises its
    `VideoDecodeError` (`on_error="raise"`, the default) or, with `on_error="skip"`,
    is left out and recorded in `failures` as (path, "ErrorType: message"), so one
    bad file in a dataset does not stop the run; only input errors (`INPUT_ERRORS`)
    are skipped, others propagate. The options are checked here, not once per file.
    `progress=True` needs `tqdm` (a warning says so if it is missing). The last
    batch may be smaller.

        loader = VideoBatchLoader(paths, batch_size=8, on_error="skip", progress=True)
        for batch in loader:
            embeddings = model.predict_on_batch(batch["pixel_values"])
        print(loader.failures)
    """

    def __init__(
        self,
        sources: Iterable,
        batch_size: int = 4,
        num_frames: int = 16,
        size: int | Sequence[int] = (288, 288),
        *,
        resize_mode: str = "center_crop",
        pad: bool = False,
        dtype: str = "float32",
        strategy: str = "auto",
        workers: int | None = None,
        prefetch: int = 2,
        progress: bool = False,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}")
        if batch_size <= 0 or prefetch <= 0:
            raise ValueError("batch_size and prefetch must be positive")
        self.sources = list(sources)
        self.batch_size, self.prefetch, self.progress = batch_size, prefetch, progress
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.on_error = on_error
        self.sampling = Sampling(num_frames, size, resize_mode, pad, dtype, strategy)
        self.failures: list[tuple[str, str]] = []

    def __len__(self) -> int:
        """Batches if no file fails."""
        return math.ceil(len(self.sources) / self.batch_size)

    def _load(self, source):
        return sample(source, self.sampling)

    def __iter__(self) -> Iterator[dict]:
        self.failures = []
        bar = _progress_bar(self.progress, len(self.sources))
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="video-decode")
        pending: deque[tuple[object, Future]] = deque()
        todo = iter(self.sources)
        try:
            batch: list = []
            while True:
                while len(pending) < self.prefetch * self.batch_size:
                    source = next(todo, _END)
                    if source is _END:
                        break
                    pending.append((source, pool.submit(self._load, source)))
                if not pending:
                    break
                source, future = pending.popleft()
                try:
                    batch.append((source, future.result()))
                except INPUT_ERRORS as err:  # recorded, or re-raised just below
                    if self.on_error == "raise":
                        raise
                    self.failures.append((_name(source), describe_failure(err)))
                finally:
                    bar.update(1)
                if len(batch) == self.batch_size:
                    yield self._collate(batch)
                    batch = []
            if batch:
                yield self._collate(batch)
        finally:  # also when the consumer stops early or an error propagates
            for _, future in pending:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()

    def _collate(self, batch: list) -> dict:
        out = {"paths": [_name(source) for source, _ in batch]}
        if self.sampling.pad:
            out["pixel_values"] = np.stack([video for _, (video, _) in batch])
            out["frame_padding_mask"] = np.stack([mask for _, (_, mask) in batch])
        else:
            out["pixel_values"] = np.stack([video for _, video in batch])
        return out


def iter_video_batches(sources: Iterable, batch_size: int = 4, **options: Any) -> Iterator[dict]:
    """Shorthand for `iter(VideoBatchLoader(sources, batch_size, **options))`.

    Use the class to read `failures` afterwards with `on_error="skip"`.
    """
    return iter(VideoBatchLoader(sources, batch_size, **options))


_END = object()


def _name(source) -> str:
    return str(source) if isinstance(source, str | os.PathLike | Path) else "<array>"


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar rather than no loader
        warnings.warn("progress=True needs tqdm (pip install tqdm): no progress bar", stacklevel=3)
        return _NoBar()
    return tqdm(total=total, unit="video", desc="decoding")
