"""The decoding stage of a distributed pipeline: one listed video → rows of sampled clips.

Runs in a CPU worker (a Ray task) that has no model: it imports no Keras, so a decoding
worker starts in a fraction of a second. Frames are decoded by the same code as in
process (`iter_clips` for windows, `sample` for whole videos), kept as uint8 (a quarter
of float32's bytes to move between processes); `as_model_input` turns them into the
float32 frames the in-process path gives, bit for bit.

An item names a file (`source`: a local path, or a URI pyarrow's filesystems open,
which is copied to a temporary file first) and the clips of it to leave out (`held`:
(start_s, end_s) pairs a target already holds). Each row is a clip (`status` "clip"), a
held last clip (`status` "held": the writer learns from it how many clips the file
has), or a failure (`status` "failed" with its `reason`); all rows have the same
columns and frame shape, so they travel in one stream.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np

from .api import iter_clips, sample
from .decode import probe
from .loader import INPUT_ERRORS, describe_failure
from .options import Sampling
from .shots import video_shots
from .times import time_key


def as_model_input(frames: np.ndarray) -> np.ndarray:
    """uint8 frames → float32 in [0, 1], exactly as `load_video`/`iter_clips` make them."""
    return frames.astype(np.float32) / np.float32(255)


def held_keys(item: dict) -> set:
    """The clips `item` leaves out: its `held` JSON ([start_s, end_s] pairs; a JSON
    string, so that every item has one type) as a set of `time_key` pairs."""
    return {(time_key(s), time_key(e)) for s, e in json.loads(item.get("held") or "[]")}


def decode_rows(item: dict, *, num_frames: int, size: int | Sequence[int],
                clip_seconds: float | None = None, stride_seconds: float | None = None,
                shots: bool = False) -> Iterator[dict]:  # fmt: skip
    """`item` ({"source", "path", "held"}) → its rows (see the module docstring).

    A generator: a long video's clips leave the task as they are decoded, so a worker
    holds one output block (Ray Data's target block size), not the whole video.

    Args:
        item: dict. `source` (a path or URI), `path` (as the rows name it), `file_id`
            (optional) and `held` (JSON: the [start_s, end_s] pairs to leave out).
        num_frames: int. Frames per clip.
        size: int or (height, width). Frame size.
        clip_seconds: float or None. Windows of long videos, in seconds; None for
            whole videos. Defaults to None.
        stride_seconds: float or None. The windows' stride. Defaults to None
            (`clip_seconds`).
        shots: bool. With `clip_seconds`: windows at the file's shot cuts, of at most
            `clip_seconds` (`shots.video_shots`), in place of the stride's. Defaults to
            False.
    """
    sampling = Sampling(num_frames, size, dtype="uint8")
    shape = (sampling.num_frames, *sampling.size, 3)
    held = held_keys(item)
    base = {"path": item["path"], "file_id": item.get("file_id", ""), "duration_s": np.nan}

    def row(status, start_s=np.nan, end_s=np.nan, ordinal=0, last=False, frames=None, reason=""):
        return {**base, "status": status, "reason": reason, "start_s": float(start_s),
                "end_s": float(end_s), "ordinal": ordinal, "last": last,
                "frames": np.zeros(shape, np.uint8) if frames is None else frames}  # fmt: skip

    try:
        with _local(item["source"]) as path:
            base["duration_s"] = _duration(path)
            if not clip_seconds:
                if (None, None) in held:
                    yield row("held", last=True)
                    return
                yield row("clip", last=True, frames=sample(path, sampling))
                return
            windows = video_shots(path, clip_seconds) if shots else None
            clips = iter_clips(path, clip_seconds, stride_seconds, sampling.num_frames,
                               sampling.size, dtype="uint8", windows=windows)  # fmt: skip
            previous = None  # one clip of look-ahead: the last one is marked as such
            for ordinal, clip in enumerate(clips):
                if previous is not None and previous["status"] == "clip":
                    yield previous
                key = (time_key(clip.start_s), time_key(clip.end_s))
                status = "held" if key in held else "clip"
                frames = clip.frames if status == "clip" else None
                previous = row(status, clip.start_s, clip.end_s, ordinal, frames=frames)
            if previous is not None:  # held or not: the last clip tells the file's count
                previous["last"] = True
                yield previous
    except INPUT_ERRORS as err:
        yield row("failed", reason=describe_failure(err))


def _duration(path) -> float:
    try:
        return float(probe(path, exact=False).duration_s) or np.nan
    except INPUT_ERRORS:
        return np.nan


@contextlib.contextmanager
def _local(source: str):
    """A local path for `source`: itself, or a temporary copy of a URI's object."""
    if "://" not in source:
        yield source
        return
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(source)
    suffix = os.path.splitext(inner)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="videoprism-") as copy:
        with filesystem.open_input_stream(inner) as stream:
            shutil.copyfileobj(stream, copy, 1 << 20)
        copy.flush()
        yield copy.name
