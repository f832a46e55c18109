"""The entry points for one video: `load_video` (a clip for the model) and `iter_clips`
(a long video as a series of timed clips)."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..deprecation import renamed_arguments, renamed_attribute
from . import decode
from .decode import (
    VideoDecodeError,
    decoded_frames,
    scan,
    seek_frames,
    stated_timing,
    stream_frames,
    to_rgb,
)
from .frames import Transform, as_frame_array
from .images import is_image_source, read_images
from .options import DTYPES, STRATEGIES, Sampling
from .sampling import (
    Window,
    check_spans,
    choose,
    count_windows,
    plan_spans,
    plan_windows,
    video_duration,
)

__all__ = ["DTYPES", "STRATEGIES", "Clip", "iter_clips", "load_clip", "load_video", "sample"]
# What `load_video` reads: a file or folder path, an array of frames, or a list of frames.
VideoSource = str | os.PathLike | np.ndarray | Sequence
# Past this many frames (about a minute at 25 fps) "auto" considers seeking: below it
# decoding everything is quick anyway and spares reading the file twice.
SEEK_ABOVE_FRAMES = 1500


def load_video(
    source: VideoSource,
    num_frames: int = 16,
    size: int | Sequence[int] = (288, 288),
    *,
    resize_mode: str = "center_crop",
    pad: bool = False,
    dtype: str = "float32",
    strategy: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One video → (num_frames, height, width, 3): float32 in [0, 1], or uint8.

    The defaults are the official VideoPrism colab's preprocessing, bit for bit: the
    frames at `np.linspace(0, n, num_frames, endpoint=False).astype(int32)` of all
    `n` decoded frames, RGB, PIL Lanczos resize on uint8, then / 255. Unlike the
    official code, memory does not grow with the video's length.

    Args:
        source: a video file (any container/codec FFmpeg reads), a GIF, an image, a
            folder of image files (natural order: 2 before 10), a (T, H, W, 3) array
            (uint8, or float in [0, 1]) or a list of such frames or PIL images.
        num_frames: frames sampled uniformly (a positive int); a shorter video
            repeats frames.
        size: (height, width) of the output, or one int for a square.
        resize_mode: for frames of another aspect ratio than `size`: "center_crop"
            (default: no distortion, borders lost), "squash" or "pad" (see `frames`).
        pad: for a video shorter than `num_frames`, keep each frame once and append
            black frames; returns `(frames, frame_padding_mask)`, 1 = real frame.
        dtype: "float32" (in [0, 1]) or "uint8" (the resized frames before / 255;
            needs uint8 input).
        strategy: how a file is decoded; every strategy returns the same frames.
            "stream" decodes every frame once, keeping only the sampled ones;
            "seek" jumps to the keyframe before each sampled frame (fast for long
            videos, after a packet scan that reads the file without decoding);
            "auto" (default) seeks when the video is long and its keyframes close
            enough for seeking to decode fewer frames, and streams otherwise.

    Raises:
        VideoDecodeError (a ValueError): the file is missing, not a video, has no
            video stream, is corrupt or truncated, or has no decodable frame.
    """
    sampling = Sampling(num_frames, size, resize_mode, pad, dtype, strategy)
    return sample(source, sampling)


def sample(source: VideoSource, sampling: Sampling) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """`load_video` with its options already checked, as one `Sampling`."""
    transform = sampling.transform()
    num_frames, pad = sampling.num_frames, sampling.pad
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if is_image_source(path):
            frames, mask = read_images(path, num_frames, transform, pad)
        else:
            frames, mask = read_video_frames(path, num_frames, transform, pad, sampling.strategy)
    elif isinstance(source, bytes | bytearray) or hasattr(source, "read"):
        raise TypeError("load_video reads files by path; save the bytes to a file first")
    else:
        array = as_frame_array(source)
        if sampling.dtype == "uint8" and array.dtype != np.uint8:
            raise ValueError("dtype='uint8' needs uint8 frames; float input stays float32")
        indices, mask = choose(len(array), num_frames, pad)
        frames = [transform(array[i]) for i in indices]
    video = _stack(frames, mask, sampling.dtype)
    return (video, mask) if pad else video


def read_video_frames(
    path: Path, num_frames: int, transform: Transform, pad: bool = False, strategy: str = "auto"
) -> tuple[list[np.ndarray], np.ndarray]:
    """The sampled frames of a video file, transformed → (frames, frame_padding_mask).

    The frame count comes from the container, or from a packet scan where it states
    none. Streaming then checks it: it decodes to the end (1/num_frames more work
    than stopping at the last sampled frame) and, if the decoder output another
    number of frames (it may drop some), samples again from the true count, so it
    always equals decoding all frames. Seeking needs the scan's timestamps and only
    runs when the scan and the container agree; a frame it cannot reach exactly
    sends us back to streaming. A file holding fewer frames than its container lists
    is truncated and raises.
    """
    count = _container_count(path)
    index = None
    if not count or (strategy == "seek" or (strategy == "auto" and count > SEEK_ABOVE_FRAMES)):
        index = scan(path)
        count = count or index.count
    if not count:
        raise VideoDecodeError(path, "zero decodable frames")
    indices, mask = choose(count, num_frames, pad)
    if index is not None and index.count == count and _should_seek(index, indices, strategy):
        kept = seek_frames(path, indices, transform, index)
        if kept is not None:
            return [kept[int(i)] for i in indices], mask
    kept, decoded = stream_frames(path, indices, transform, to_end=True)
    if decoded == 0:
        raise VideoDecodeError(path, "zero decodable frames")
    if decoded != count:
        indices, mask = choose(decoded, num_frames, pad)
        missing = [int(i) for i in indices if int(i) not in kept]
        if missing:
            kept.update(stream_frames(path, missing, transform)[0])
    return [kept[int(i)] for i in indices], mask


def _container_count(path) -> int:
    """The frame count the container states (0 when it does not: Matroska, WebM)."""
    container, stream = decode.open_video(path)
    with container:
        return stream.frames


def _should_seek(index, indices, strategy) -> bool:
    """With "auto", seek a long video only if that decodes under half of its frames: a
    video with few keyframes would be decoded again and again from the same keyframe."""
    if strategy != "auto":
        return strategy == "seek"
    return index.count > SEEK_ABOVE_FRAMES and 2 * decode.seek_cost(index, indices) < index.count


def _stack(frames: list[np.ndarray], mask: np.ndarray, dtype: str) -> np.ndarray:
    """Frames (+ black padding where mask is 0) → one array of the requested dtype."""
    frames = list(frames) + [np.zeros_like(frames[0])] * (len(mask) - len(frames))
    video = np.stack(frames)
    if dtype == "uint8":  # only arrays can hold float frames, and `load_video` checks them
        return video
    if video.dtype == np.uint8:
        return video.astype(np.float32) / np.float32(255)
    return video.astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)
class Clip:
    """A window of a long video; unpacks as `start_s, end_s, frames = clip`.

    Attributes:
        start_s: float. The window's start, in seconds from the first frame.
        end_s: float. Its end (the video's end for the last window).
        frames: (num_frames, H, W, 3) array. The sampled frames.
        frame_padding_mask: (num_frames,) int32 array. 1 = real frame (all ones
            unless `pad=True` padded the clip).
    """

    start_s: float
    end_s: float
    frames: np.ndarray
    frame_padding_mask: np.ndarray

    start = renamed_attribute("start_s")  # the names before `start_s`/`end_s`
    end = renamed_attribute("end_s")

    def __iter__(self) -> Iterator:
        return iter((self.start_s, self.end_s, self.frames))


Clip.__init__ = renamed_arguments(start="start_s", end="end_s")(Clip.__init__)


def iter_clips(
    path: str | os.PathLike,
    clip_seconds: float,
    stride_seconds: float | None = None,
    num_frames: int = 16,
    size: int | Sequence[int] = (288, 288),
    *,
    resize_mode: str = "center_crop",
    pad: bool = False,
    dtype: str = "float32",
    windows: Sequence[tuple[float, float]] | None = None,
) -> Iterator[Clip]:
    """A long video → `Clip`s of `clip_seconds` every `stride_seconds` (default: no overlap),
    or at the (start_s, end_s) `windows` given (e.g. `shots.video_shots`' shots).

        for start_s, end_s, frames in iter_clips("long.mp4", 10, 5):
            ...  # seconds from the first frame; a `Clip` also has .frame_padding_mask

    One packet scan (reads the file, decodes nothing) gives every frame's timestamp,
    then one decoding pass cuts all clips: each keeps the `num_frames` sampled frames
    of the frames that start inside it, sampled as `load_video` samples a whole video
    (a clip covering the video gives `load_video`'s frames). Clips are yielded as soon
    as their last frame is decoded, and only the frames of open clips are held.
    The last clip may be shorter (it ends with the video); with `pad=True` a clip
    with fewer than `num_frames` frames is padded and masked rather than repeated.
    Arguments and the file are checked (and scanned) at the call; decoding happens
    as you iterate. Explicit `windows` are cut the same way, in order of their starts
    (`clip_seconds` and `stride_seconds` are then unused); their ends are cut back to
    the video's, and windows starting past its end are left out.
    """
    sampling = Sampling(num_frames, size, resize_mode, pad, dtype)
    spans = None if windows is None else check_spans(windows)
    if spans is None and (clip_seconds is None or clip_seconds <= 0):
        raise ValueError(f"clip_seconds must be positive; got {clip_seconds}")
    if stride_seconds is not None and stride_seconds <= 0:
        raise ValueError(f"stride_seconds must be positive; got {stride_seconds}")
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"iter_clips needs a video file path; got {type(path).__name__}")
    times, fps = _frame_times(path)
    duration = video_duration(times, fps)
    if spans is not None:
        plan = plan_spans(times, duration, spans, sampling.num_frames, sampling.pad)
        return _cut(path, plan, sampling.transform(), sampling.dtype)
    plan = plan_windows(
        times,
        duration,
        clip_seconds,
        stride_seconds or clip_seconds,
        sampling.num_frames,
        sampling.pad,
    )
    return _cut(path, plan, sampling.transform(), sampling.dtype)


def count_clips(path: str | os.PathLike, clip_seconds: float,
                stride_seconds: float | None = None) -> int:  # fmt: skip
    """How many clips `iter_clips(path, clip_seconds, stride_seconds)` gives, from the
    duration and frame rate the container states: nothing decoded, no packet scan, so
    that a progress bar knows its total before the work starts. Exact for a constant
    frame rate; an estimate where the stated duration or rate is off (the clips
    themselves come from every frame's timestamp)."""
    duration, fps = stated_timing(path)
    step = 1.0 / fps if fps > 0 else 0.0
    return count_windows(duration, duration - step, clip_seconds, stride_seconds or clip_seconds)


def load_clip(path: str | os.PathLike, start_s: float, end_s: float, num_frames: int = 16,
              size: int | Sequence[int] = (288, 288), *, resize_mode: str = "center_crop",
              dtype: str = "float32") -> np.ndarray:  # fmt: skip
    """The frames of one window [start_s, end_s) of a video file → (num_frames, H, W, 3).

    Sampled as `iter_clips` samples its windows (uniformly over the frames that start
    inside it), so a clip reported by `iter_clips` (or stored in an index) can be
    shown again from its times alone. A window between two frames gives the next one.

    Raises:
        ValueError: `start_s`/`end_s` not finite, negative, `start_s` after `end_s`, or
            `start_s` at or past the video's end; `VideoDecodeError` for the file.
    """
    sampling = Sampling(num_frames, size, resize_mode, False, dtype)
    check_window(start_s, end_s)
    times, fps = _frame_times(path)
    duration = video_duration(times, fps)
    if start_s >= duration:
        raise ValueError(f"start_s={start_s:g} is past the end of {path} ({duration:g} s long)")
    inside = np.flatnonzero((times >= start_s) & (times < end_s))
    if not len(inside):
        inside = np.array([np.searchsorted(times, start_s)]).clip(0, len(times) - 1)
    indices, mask = choose(len(inside), sampling.num_frames, False)
    wanted = inside[indices]
    kept, _ = stream_frames(Path(path), wanted, sampling.transform())
    frames = [kept[int(i)] for i in wanted if int(i) in kept]
    if not frames:
        raise VideoDecodeError(path, f"no decodable frame in {start_s:g}–{end_s:g} s")
    frames += [frames[-1]] * (len(wanted) - len(frames))
    return _stack(frames, mask, sampling.dtype)


def check_window(start_s: float, end_s: float) -> None:
    """A clip's times as `load_clip` takes them: finite seconds, 0 <= start_s <= end_s."""
    for name, t in (("start_s", start_s), ("end_s", end_s)):
        if isinstance(t, bool) or not isinstance(t, int | float | np.number):
            raise ValueError(f"{name} must be a number of seconds; got {t!r}")
        if not np.isfinite(t) or t < 0:
            raise ValueError(f"{name} must be finite seconds from the video's start (>= 0); "
                             f"got {name}={t}")  # fmt: skip
    if start_s > end_s:
        raise ValueError(f"start_s={start_s:g} is after end_s={end_s:g}: a window starts "
                         "before it ends")  # fmt: skip


def _frame_times(path) -> tuple[np.ndarray, float]:
    """Every frame's start in seconds from the first (one packet scan), and the frame rate."""
    index = scan(path)
    if not index.count:
        raise VideoDecodeError(path, "zero decodable frames")
    fps = index.fps or 25.0
    times = index.seconds()
    if times is None:  # the container gives no timestamps: assume a constant rate
        times = np.arange(index.count) / fps
    return times, fps


def _cut(path, plan: Iterator[Window], transform, dtype) -> Iterator[Clip]:
    """The decoding pass of `iter_clips`: windows open when their first frame is reached
    and are yielded when their last one is; frames no open window needs are dropped."""
    upcoming = next(plan, None)
    open_: deque[tuple[Window, set]] = deque()  # each window with its indices as a set
    kept: dict[int, np.ndarray] = {}
    yielded = 0
    with contextlib.closing(decoded_frames(path)) as frames:
        for i, frame in enumerate(frames):
            while upcoming is not None and upcoming.indices[0] <= i:
                open_.append((upcoming, set(upcoming.indices.tolist())))
                upcoming = next(plan, None)
            if any(i in wanted for _, wanted in open_):
                kept[i] = transform(to_rgb(frame))
            while open_ and open_[0][0].indices[-1] <= i:
                yield _clip(open_.popleft()[0], kept, dtype)
                yielded += 1
            if not open_ and upcoming is None:
                return
            low = open_[0][0].indices[0] if open_ else upcoming.indices[0]
            for j in [j for j in kept if j < low]:
                del kept[j]
    # Fewer frames decoded than the scan counted: finish the open clips with what exists.
    for window, wanted in open_:
        if wanted & kept.keys():
            yield _clip(window, kept, dtype)
            yielded += 1
    if not yielded:
        raise VideoDecodeError(path, "zero decodable frames")


def _clip(window: Window, kept: dict, dtype: str) -> Clip:
    frames, last = [], None
    for i in window.indices:
        last = kept.get(int(i), last)
        frames.append(last)
    first = next(f for f in frames if f is not None)
    frames = [first if f is None else f for f in frames]
    return Clip(window.start_s, window.end_s, _stack(frames, window.mask, dtype), window.mask)
