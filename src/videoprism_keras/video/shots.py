"""Shots: where a video cuts from one shot to the next, and windows that follow the cuts.

    shot_cuts("film.mp4")                  → cut times in seconds from the first frame
    shot_cuts("film.mp4", 60.0, 90.0)      → only those inside, decoding only that minute's half
    shot_windows(cuts, duration_s, 10.0)   → (start_s, end_s) per shot, long ones split
    snap(t, cuts, 0.5)                     → t moved onto the nearest cut within 0.5 s

The cuts are PySceneDetect's (its ContentDetector: a cut is a jump in the frames' hue,
saturation and lightness) on its PyAV backend, the FFmpeg that decodes the clips too, so
both agree on every frame's time. PySceneDetect is the `shots` extra; no Keras here.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence

import numpy as np

from ..constants import SHOT_DETECT_WIDTH, SHOT_MIN_SECONDS, SHOT_THRESHOLD
from ..extras import require
from .decode import VideoDecodeError, open_video

__all__ = ["shot_cuts", "shot_windows", "snap", "video_shots"]


def shot_cuts(path: str | os.PathLike, start_s: float | None = None,
              end_s: float | None = None) -> np.ndarray:  # fmt: skip
    """The times at which `path` cuts to another shot → (N,) float64 seconds, ascending.

    A cut's time is the start of the new shot's first frame, in seconds from the video's
    first frame (as `iter_clips` times its windows). With `start_s` and/or `end_s`, only
    that span is decoded (from the keyframe before `start_s`) and only the cuts strictly
    inside it are returned.

    Args:
        path: str or path. A video file.
        start_s: float or None. Where to start looking, in seconds. Defaults to None (the
            first frame).
        end_s: float or None. Where to stop. Defaults to None (the last frame).

    Raises:
        ValueError: `start_s`/`end_s` not seconds (finite, >= 0) or `start_s` not before
            `end_s`, or `start_s` past the video's end; `VideoDecodeError` (a ValueError)
            for a file that cannot be read; `MissingExtra` (an ImportError) without
            PySceneDetect (the `shots` extra).
    """
    cuts, _ = _detect(path, start_s, end_s)
    return cuts


def video_shots(path: str | os.PathLike, clip_seconds: float) -> list[tuple[float, float]]:
    """`path`'s shots as windows of at most `clip_seconds` (`shot_windows` of its
    `shot_cuts`), from one decoding pass; the last ends where the last frame does."""
    _check_positive("clip_seconds", clip_seconds)
    cuts, duration_s = _detect(path, None, None)
    return shot_windows(cuts, duration_s, clip_seconds)


def shot_windows(cuts: Sequence[float] | np.ndarray, duration_s: float,
                 clip_seconds: float) -> list[tuple[float, float]]:  # fmt: skip
    """Shots as (start_s, end_s) windows covering [0, duration_s], in order.

    The cuts split the video into shots; a shot shorter than `SHOT_MIN_SECONDS`
    (constants.py) is merged into its shorter neighbour (a flash or the tail of a fade
    makes no window of its own), and a shot longer than `clip_seconds` is split into
    equal parts of at most `clip_seconds`. Cuts outside (0, duration_s) are ignored.

    Args:
        cuts: sequence of float. Cut times in seconds (`shot_cuts`).
        duration_s: float. The video's duration in seconds.
        clip_seconds: float. The longest window, in seconds.

    Raises:
        ValueError: `duration_s` or `clip_seconds` not a positive number of seconds.
    """
    _check_positive("duration_s", duration_s)
    _check_positive("clip_seconds", clip_seconds)
    inside = sorted({float(c) for c in np.asarray(cuts, float).ravel() if 0 < c < duration_s})
    edges = _merged([0.0, *inside, float(duration_s)], SHOT_MIN_SECONDS)
    windows = []
    for start, end in itertools.pairwise(edges):
        # A hair under a whole number of clips is that number, not one more sliver.
        parts = max(1, math.ceil((end - start) / clip_seconds - 1e-9))
        bounds = np.linspace(start, end, parts + 1)
        windows += [(float(a), float(b)) for a, b in itertools.pairwise(bounds)]
    return windows


def snap(t: float, cuts: Sequence[float] | np.ndarray, tolerance_s: float) -> float:
    """`t` moved onto the nearest cut if one is within `tolerance_s` seconds, else `t`.

    Raises:
        ValueError: `tolerance_s` negative or not a number.
    """
    if isinstance(tolerance_s, bool) or not isinstance(tolerance_s, int | float | np.number) \
            or not tolerance_s >= 0:  # fmt: skip
        raise ValueError(f"tolerance_s must be seconds (>= 0). Received: {tolerance_s!r}")
    cuts = np.asarray(cuts, float).ravel()
    if not len(cuts):
        return float(t)
    nearest = float(cuts[np.argmin(np.abs(cuts - t))])
    return nearest if abs(nearest - t) <= tolerance_s else float(t)


def _merged(edges: list[float], shortest: float) -> list[float]:
    """Shot edges without the shots under `shortest` seconds: the shortest goes first,
    into whichever neighbour is shorter (the first and last shots have one)."""
    while len(edges) > 2:
        lengths = np.diff(edges)
        i = int(np.argmin(lengths))
        if lengths[i] >= shortest:
            break
        if i == 0:
            drop = 1
        elif i == len(lengths) - 1:
            drop = i
        else:
            drop = i if lengths[i - 1] <= lengths[i + 1] else i + 1
        del edges[drop]
    return edges


def _detect(path, start_s, end_s) -> tuple[np.ndarray, float]:
    """(cuts inside the span, where the last frame read ends) in one pass of PySceneDetect."""
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None:
            _check_seconds(name, value)
    if start_s is not None and end_s is not None and not start_s < end_s:
        raise ValueError(f"start_s={start_s:g} is not before end_s={end_s:g}: a span to look "
                         "for cuts in starts before it ends")  # fmt: skip
    require(("scenedetect-headless",), "shot detection")
    container, _ = open_video(path)  # the project's checks and words for a bad file
    container.close()
    import av
    from scenedetect import ContentDetector, SceneManager
    from scenedetect.backends.pyav import VideoStreamAv
    from scenedetect.video_stream import FrameRateUnavailable, VideoOpenFailure

    try:
        # suppress_output: FFmpeg's log callback stays as it is. FFmpeg's own threads, as
        # `decode.open_video` decodes: half the time of one thread on 720p.
        video = VideoStreamAv(os.fspath(path), suppress_output=True, threading_mode="AUTO")
        manager = SceneManager()
        manager.auto_downscale = False
        manager.downscale = max(1, round(video.frame_size[0] / SHOT_DETECT_WIDTH))
        manager.add_detector(
            ContentDetector(threshold=SHOT_THRESHOLD, min_scene_len=float(SHOT_MIN_SECONDS))
        )
        if start_s:
            video.seek(float(start_s))
        read = manager.detect_scenes(video, end_time=None if end_s is None else float(end_s))
        scenes = manager.get_scene_list()
        last = video.position.seconds
    except (av.error.FFmpegError, FrameRateUnavailable, VideoOpenFailure, OSError) as err:
        raise VideoDecodeError(path, f"shot detection could not read it ({err})") from None
    if not read:
        if start_s:
            raise ValueError(f"start_s={start_s:g} is past the end of {path}: no frame there")
        raise VideoDecodeError(path, "zero decodable frames")
    low = start_s or 0.0
    high = math.inf if end_s is None else end_s
    cuts = [s.seconds for s, _ in scenes[1:]]
    cuts = np.array([c for c in cuts if low < c < high], np.float64)
    return cuts, float(last + 1.0 / float(video.frame_rate))


def _check_seconds(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not np.isfinite(value) or value < 0:  # fmt: skip
        raise ValueError(f"{name} must be finite seconds from the video's start (>= 0). "
                         f"Received: {name}={value!r}")  # fmt: skip


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not np.isfinite(value) or value <= 0:  # fmt: skip
        raise ValueError(f"{name} must be a positive number of seconds. Received: "
                         f"{name}={value!r}")  # fmt: skip
