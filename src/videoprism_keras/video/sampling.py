"""Which frames to keep: the official uniform sampling, padding, and clip windows.

Pure numpy, so the choices can be tested (and reasoned about) without decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

# Frame times are floats computed from integer timestamps; a frame exactly on a window
# boundary must not fall on the wrong side because of rounding.
_EPS = 1e-6


def sample_indices(num_available: int, num_frames: int) -> np.ndarray:
    """The official colab's sampling: `num_frames` indices spread uniformly over the video.

    `np.linspace(0, n, num_frames, endpoint=False).astype(int32)`: a video shorter
    than `num_frames` repeats frames, a longer one skips them.
    """
    for name, value in (("num_available", num_available), ("num_frames", num_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"sample_indices: {name} must be a positive integer, got {value!r}")
    return np.linspace(0, num_available, num_frames, endpoint=False).astype(np.int32)


def choose(num_available: int, num_frames: int, pad: bool) -> tuple[np.ndarray, np.ndarray]:
    """(indices, frame_padding_mask) for a video of `num_available` frames.

    Without `pad` (or when the video is long enough) this is `sample_indices` and an
    all-ones mask. With `pad` a short video keeps each frame once and the mask marks
    the missing tail (1 = real frame, 0 = padding), instead of repeating frames.
    `num_frames` is the caller's, already checked (`options.Sampling`).
    """
    if num_available <= 0:
        raise ValueError("no frames to sample")
    if pad and num_available < num_frames:
        mask = np.zeros(num_frames, np.int32)
        mask[:num_available] = 1
        return np.arange(num_available, dtype=np.int32), mask
    return sample_indices(num_available, num_frames), np.ones(num_frames, np.int32)


class Window(NamedTuple):
    """One clip to cut: its time span and the frame indices (into the whole video)."""

    start_s: float  # seconds from the first frame
    end_s: float
    indices: np.ndarray  # (k,) sorted; k == num_frames unless padded
    mask: np.ndarray  # (num_frames,), 1 = real frame


def video_duration(times: np.ndarray, fps: float) -> float:
    """Seconds from the first frame to the end of the last one (its duration estimated)."""
    if len(times) > 1:
        step = float(np.median(np.diff(times)))
    else:
        step = 1.0 / fps if fps > 0 else 0.0
    return float(times[-1]) + step


def plan_windows(
    times: np.ndarray,
    duration_s: float,
    clip_seconds: float,
    stride_seconds: float,
    num_frames: int,
    pad: bool,
) -> Iterator[Window]:
    """Windows [k·stride, k·stride + clip) over a video whose frames start at `times`.

    A window takes the frames that start inside it and samples them as a whole video
    would be sampled (so a window covering everything gives `load_video`'s frames).
    Timestamps, not the average frame rate, decide membership, which keeps variable
    frame rate videos right. A window in which no frame starts (a gap in a variable
    frame rate video) takes the frame still on screen. Generated lazily: a long video
    has many windows and only a few are open at once.
    """
    if clip_seconds <= 0 or stride_seconds <= 0:
        raise ValueError("clip_seconds and stride_seconds must be positive")
    k = 0
    while True:
        start = k * stride_seconds
        if k and _past_end(start, duration_s, float(times[-1])):
            return
        yield _window(times, start, min(start + clip_seconds, duration_s), num_frames, pad)
        k += 1


def plan_spans(times: np.ndarray, duration_s: float, spans: list[tuple[float, float]],
               num_frames: int, pad: bool) -> Iterator[Window]:  # fmt: skip
    """Windows at given (start_s, end_s) spans (sorted by start, as `check_spans` leaves
    them), each cut as `plan_windows` cuts its own; ends past the video's are cut back to
    it and spans starting at or past its end are left out."""
    for start, end in spans:
        if start >= duration_s - _EPS:
            return
        yield _window(times, start, min(end, duration_s), num_frames, pad)


def check_spans(spans) -> list[tuple[float, float]]:
    """Explicit windows → sorted (start_s, end_s) float pairs, or a ValueError naming
    the first that is not finite seconds with 0 <= start_s < end_s."""
    checked = []
    for i, span in enumerate(spans):
        try:
            start, end = (float(t) for t in span)
        except (TypeError, ValueError):
            raise ValueError(f"windows[{i}] must be a (start_s, end_s) pair of seconds. "
                             f"Received: {span!r}") from None  # fmt: skip
        if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
            raise ValueError(f"windows[{i}] must be finite seconds with 0 <= start_s < end_s. "
                             f"Received: {span!r}")  # fmt: skip
        checked.append((start, end))
    if not checked:
        raise ValueError("windows is empty: give at least one (start_s, end_s) pair. "
                         f"Received: windows={spans!r}")  # fmt: skip
    return sorted(checked)


def _window(times, start, end, num_frames, pad) -> Window:
    """The window [start, end): the frames that start inside it, sampled."""
    lo = int(np.searchsorted(times, start - _EPS, side="left"))
    hi = int(np.searchsorted(times, end - _EPS, side="left"))
    if hi <= lo:
        lo = min(max(lo - 1, 0), len(times) - 1)
        hi = lo + 1
    indices, mask = choose(hi - lo, num_frames, pad)
    return Window(float(start), float(end), indices + lo, mask)


def count_windows(duration_s: float, last_start_s: float, clip_seconds: float,
                  stride_seconds: float) -> int:  # fmt: skip
    """How many windows `plan_windows` gives a video of `duration_s` seconds whose last
    frame starts at `last_start_s`, without its frame times."""
    if clip_seconds <= 0 or stride_seconds <= 0:
        raise ValueError("clip_seconds and stride_seconds must be positive")
    count = 1
    while not _past_end(count * stride_seconds, duration_s, last_start_s):
        count += 1
    return count


def _past_end(start: float, duration_s: float, last_start_s: float) -> bool:
    """Whether a window starting at `start` (not the first) is past the end of the video,
    or is a tail in which no frame starts (a sliver of the last one)."""
    return start >= duration_s - _EPS or start > last_start_s + _EPS
