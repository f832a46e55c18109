"""Moments of video files without an index: each file streamed window by window, each
window reduced to its embedding as soon as it is made.

    stream = stream_curves(model, ["match.mp4"], query, clip_seconds=4, stride_seconds=2)
    moments = moments_of(list(stream), top_k=5)

Memory is one batch of frames (and the few windows the decoder holds open) whatever the
video's length, plus a window's two times: the scores are cosines centred on the mean of
every streamed window, as an index centres on its own (`apps.index.moments`), and that
mean is known only at the end, so each window's vector waits in a temporary file (on
disk, not in memory) until then. The windows are `iter_clips`'s, embedded as
`VideoIndex.add_videos` embeds them, so the curves are the ones an index of the same files
would give.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..constants import MOMENT_STRIDE_SHARE
from .embedding import embed_batches
from .timeline import Curve, centred_scores

# Windows' vectors read back from the temporary file at a time (a bounded temporary).
SPILL_BLOCK = 4096

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder


class CurveStream:
    """What `stream_curves` returns: iterate it for one `Curve` per file, in order (all
    of them once the last file is streamed: their scores need every window's vector).

    Attributes:
        failures: list of (path, reason). The files that could not be read (with
            `on_error="skip"`), as they are met: all of them once the iteration ends.
    """

    def __init__(self, curves: Iterator[Curve], failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        self._curves = curves

    def __iter__(self) -> Iterator[Curve]:
        return self

    def __next__(self) -> Curve:
        return next(self._curves)

    def close(self) -> None:
        """Stops early: the decoding thread ends."""
        self._curves.close()


def stream_curves(model: VideoPrismBackbone, paths: str | os.PathLike | Sequence[str | os.PathLike],
                  query: ArrayLike, *, clip_seconds: float, stride_seconds: float | None = None,
                  num_frames: int | None = None, size: int | Sequence[int] | None = None,
                  batch_size: int = 4, progress: bool = False, on_error: str = "raise",
                  encoder: Encoder | None = None) -> CurveStream:  # fmt: skip
    """The query's similarity to every window of each video file, one `Curve` per file.

    Args:
        model: `VideoPrismBackbone`. The model that embedded `query`.
        paths: path or sequence of paths. Video files.
        query: (D,) or (1, D) array. The query's embedding (a video's, an image's, or
            with an LvT model a text's).
        clip_seconds: float. Each window's length in seconds.
        stride_seconds: float or None. From one window's start to the next. Defaults to
            None (`constants.MOMENT_STRIDE_SHARE` of a window, as `videoprism moments`).
        num_frames: int or None. Frames per window. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        batch_size: int. Windows per model call. Defaults to 4.
        progress: bool. Show a progress bar (needs tqdm). Defaults to False.
        on_error: str. "raise", or "skip": a file that fails is left out (no curve)
            and recorded in `CurveStream.failures`. Defaults to "raise".
        encoder: `Encoder` or None. The compiled model calls. Defaults to None (a new
            `Encoder(model)`).

    Returns:
        A `CurveStream` of `Curve`s: each video's windows in time order, with the query's
        cosine similarity to each, centred on the mean of every window streamed (those
        of all `paths`: what an index of them holds). Files are checked and decoded as
        you iterate.

    Raises:
        ValueError: `query` is not one vector, or (as you iterate) a file cannot be
            read and `on_error` is "raise" (`VideoDecodeError`).
    """
    vector = np.asarray(query, np.float32)
    if vector.ndim == 2 and len(vector) == 1:
        vector = vector[0]
    if vector.ndim != 1 or not len(vector) or not np.all(np.isfinite(vector)):
        raise ValueError(f"query must be one finite embedding of shape (D,); got shape "
                         f"{np.shape(query)}")  # fmt: skip
    if not clip_seconds or clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be positive; got {clip_seconds}")
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    stride_seconds = stride_seconds or clip_seconds * MOMENT_STRIDE_SHARE
    stream = embed_batches(model, paths, kind="video", batch_size=batch_size,
                           num_frames=num_frames, size=size, clip_seconds=clip_seconds,
                           stride_seconds=stride_seconds, progress=progress,
                           on_error=on_error, encoder=encoder)  # fmt: skip
    return CurveStream(_curves(stream, vector), stream.failures)


def _curves(stream, query: np.ndarray) -> Iterator[Curve]:
    """Each batch's windows reduced to their unit vectors at once and written to a
    temporary file; the curves come when the last file is done, centred on the mean of
    every file's windows (read back from that file a block at a time). The windows of a
    file that failed half-way (no last window) are dropped: the stream records the
    failure."""
    with tempfile.TemporaryFile(prefix="videoprism-windows-") as spill:
        files: list[tuple[str, int, int]] = []  # path, first row, end row: the whole files
        starts, ends = [], []  # every row's times (a few bytes a window)
        path, first, rows = None, 0, 0
        try:
            for batch in stream:
                unit = np.asarray(batch.vectors, np.float32)
                unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
                del batch.frames  # the batch's pixels go now, not when the next batch comes
                for i, (item_path, last) in enumerate(zip(batch.paths, batch.last, strict=True)):
                    if item_path != path:  # a new file: what was open failed half-way
                        path, first = item_path, rows
                    spill.write(unit[i].tobytes())
                    starts.append(batch.start_s[i])
                    ends.append(batch.end_s[i])
                    rows += 1
                    if last:
                        files.append((path, first, rows))
                        path = None
        finally:
            stream.close()
        if not files:
            return
        spill.flush()
        vectors = np.memmap(spill, np.float32, mode="r", shape=(rows, len(query)))
        blocks = [(at, min(at + SPILL_BLOCK, b)) for _, a, b in files
                  for at in range(a, b, SPILL_BLOCK)]  # fmt: skip
        total = sum(vectors[a:b].sum(axis=0, dtype=np.float64) for a, b in blocks)
        mean = (total / sum(b - a for _, a, b in files)).astype(np.float32)
        starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
        for path, a, b in files:
            scores = np.concatenate([centred_scores(vectors[at : min(at + SPILL_BLOCK, b)],
                                                    query, mean)
                                     for at in range(a, b, SPILL_BLOCK)])  # fmt: skip
            order = np.argsort(starts[a:b], kind="stable")
            yield Curve(path, starts[a:b][order], ends[a:b][order], scores[order])
        del vectors
