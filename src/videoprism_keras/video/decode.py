"""PyAV decoding: open a file defensively, index its frames without decoding them, then
decode only what is needed, either streaming through the file or seeking.

Why an index: the official code decodes every frame into memory, counts them, and
samples `np.linspace(0, count, ...)`. To sample the same frames without holding them
we need the count first. `stream.frames` gives it for MP4/MOV/AVI; Matroska/WebM (and
damaged files) do not say, so `scan` reads the packets once, which decodes nothing
(I/O only, a small fraction of decoding time). The scan also yields every frame's
presentation timestamp and the keyframes, which lets `seek_frames` jump to exactly the
wanted frames of a long video, and lets clips follow real timestamps.

Every failure becomes a `VideoDecodeError` (a ValueError) that names the file.
"""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .frames import Transform


class VideoDecodeError(ValueError):
    """A video could not be read; `path` names the file and `cause` says why."""

    def __init__(self, path, cause: str):
        self.path, self.cause = str(path), cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):  # picklable (process pools) despite the two-argument constructor
        return type(self), (self.path, self.cause)


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # exact when the container or a packet scan counts them
    fps: float  # average frame rate
    duration: float  # seconds
    width: int  # as stored; swap with height when `rotation` is ±90
    height: int
    rotation: int  # degrees counter-clockwise applied for display (display matrix)


@dataclass(frozen=True)
class FrameIndex:
    """What a packet scan learns about a video stream, without decoding it."""

    count: int  # frames (packets that carry one)
    pts: np.ndarray | None  # (count,) int64 presentation timestamps, sorted; None if unknown
    keyframes: np.ndarray  # positions (in presentation order) of keyframes, sorted
    time_base: Fraction
    fps: float  # the stream's average frame rate, 0.0 if unknown

    def seconds(self) -> np.ndarray | None:
        """Each frame's start, in seconds from the first frame."""
        if self.pts is None:
            return None
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)


def open_video(path):
    """(container, video stream), or a `VideoDecodeError` saying why not.

    Refuses anything but a regular, non-empty file before FFmpeg sees it: a pipe or
    a device would block or never end, and an empty file has nothing to probe.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory with no image files, not a video")
    if not path.is_file():
        raise VideoDecodeError(path, "is not a regular file (a pipe or device could block)")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "is empty (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoDecodeError(path, f"not a readable video file ({err})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # FFmpeg's own frame/slice threads; bit-exact
    return container, stream


def _corrupt(path, frames: int, err) -> VideoDecodeError:
    return VideoDecodeError(path, f"corrupt or truncated: {err}, after {frames} frames")


def scan(path) -> FrameIndex:
    """Reads every packet of the video stream (decoding none) → a `FrameIndex`.

    Packets that carry no frame (empty, or marked discard by an edit list) are not
    counted, as the decoder would not output them either.
    """
    import av

    container, stream = open_video(path)
    stamps, keys, count, packets, complete = array("q"), array("q"), 0, 0, True
    with container:
        time_base, fps, listed = stream.time_base or Fraction(1, 1), _fps(stream), stream.frames
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    raise _corrupt(path, count, "a damaged packet")
                packets += bool(packet.size)
                if not packet.size or packet.is_discard:
                    continue
                count += 1
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    complete = False
                    continue
                stamps.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        except av.error.FFmpegError as err:
            raise _corrupt(path, count, err) from None
    _check_listed(path, listed, packets)
    pts = np.sort(np.frombuffer(stamps, np.int64)) if complete and count else None
    if pts is not None and len(pts) > 1 and not np.all(np.diff(pts) > 0):
        pts = None  # repeated timestamps: they cannot tell frames apart
    if pts is None:
        return FrameIndex(count, None, np.zeros(0, np.int64), Fraction(time_base), fps)
    keyframes = np.searchsorted(pts, np.frombuffer(keys, np.int64))
    return FrameIndex(count, pts, np.unique(keyframes), Fraction(time_base), fps)


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path, exact: bool = True) -> VideoInfo:
    """Frame count, frame rate, duration, size and rotation, decoding one frame at most.

    When the container does not store the frame count, `exact` counts packets (reads
    the file, decodes nothing); otherwise duration × fps estimates it.
    """
    container, stream = open_video(path)
    with container:
        fps = _fps(stream)
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        duration = duration or (container.duration or 0) / 1e6
        count = stream.frames
        width, height = stream.width, stream.height
        rotation = 0
        with contextlib.suppress(Exception):  # rotation is a nicety: never fail for it
            rotation = int(next(container.decode(stream)).rotation or 0)
    if not count:
        count = scan(path).count if exact else round(duration * fps)
    if not duration and fps:
        duration = count / fps
    return VideoInfo(
        count, fps or (count / duration if duration else 0.0), duration, width, height, rotation
    )


def to_rgb(frame) -> np.ndarray:
    """A decoded frame → (H, W, 3) uint8 RGB, turned upright as a player would show it.

    PyAV's `frame.rotation` is the display matrix's counter-clockwise angle (phones
    store portrait video as landscape plus this matrix); `np.rot90` also turns
    counter-clockwise, which is what FFmpeg's own autorotation does.
    """
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def decoded_frames(path) -> Iterator:
    """Every frame of the video stream in presentation order; one file handle, closed on exit.

    Strict about damage, unlike FFmpeg's command line (which the official reader runs
    with errors silenced): a packet the demuxer flags as corrupt, a decoding error, or
    a file holding fewer frames than its container lists raises, rather than letting
    a partly downloaded video pass as a shorter one.
    """
    import av

    container, stream = open_video(path)
    listed, packets, decoded = stream.frames, 0, 0
    with container:
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    raise _corrupt(path, decoded, "a damaged packet")
                packets += bool(packet.size)
                for frame in packet.decode():
                    yield frame
                    decoded += 1
        except av.error.FFmpegError as err:
            raise _corrupt(path, decoded, err) from None
    _check_listed(path, listed, packets)


def _check_listed(path, listed: int, packets: int) -> None:
    if listed and packets < listed:
        raise VideoDecodeError(
            path, f"truncated: the container lists {listed} frames, the file holds {packets}"
        )


def stream_frames(path, wanted: Iterable[int], transform: Transform, to_end: bool = False):
    """One decoding pass keeping only frames in `wanted`, transformed → ({index: frame}, n).

    `n` is the number of frames decoded: all of them with `to_end`, else up to the
    last wanted one. Memory holds the kept (already resized) frames, nothing else.
    """
    wanted = {int(i) for i in wanted}
    last = max(wanted, default=-1)
    kept, decoded = {}, 0
    with contextlib.closing(decoded_frames(path)) as frames:
        for index, frame in enumerate(frames):
            decoded = index + 1
            if index in wanted:
                kept[index] = transform(to_rgb(frame))
            if index >= last and not to_end:
                break
    return kept, decoded


def seek_cost(index: FrameIndex, wanted: Iterable[int]) -> int:
    """Frames `seek_frames` would decode: from each wanted frame's keyframe up to it."""
    cost, position = 0, -1
    for target in sorted({int(i) for i in wanted}):
        key = _keyframe_before(index, target)
        cost += target - (position if key <= position < target else key - 1)
        position = target
    return cost


def _keyframe_before(index: FrameIndex, position: int) -> int:
    k = int(np.searchsorted(index.keyframes, position, side="right")) - 1
    return int(index.keyframes[k]) if k >= 0 else 0


def seek_frames(path, wanted: Iterable[int], transform: Transform, index: FrameIndex):
    """Like `stream_frames`, but seeks to the keyframe before each wanted frame.

    A frame is kept only when its timestamp is exactly the one the scan found at that
    position, so the result is the streaming result or None (the caller then streams):
    never a neighbouring frame.
    """
    import av

    if index.pts is None or not len(index.keyframes):
        return None
    kept, position, frames = {}, -1, None
    container, stream = open_video(path)
    with container:
        try:
            for target in sorted({int(i) for i in wanted}):
                key = _keyframe_before(index, target)
                frame = None
                if frames is not None and key <= position < target:
                    frame = _advance(frames, int(index.pts[target]))
                # The container may land after the keyframe asked for (some index by
                # decoding timestamps): one more try from the keyframe before it.
                for start in dict.fromkeys((key, _keyframe_before(index, key - 1))):
                    if frame is not None:
                        break
                    if frames is not None:
                        frames.close()
                    container.seek(int(index.pts[start]), stream=stream, backward=True)
                    frames = container.decode(stream)
                    frame = _advance(frames, int(index.pts[target]))
                if frame is None:
                    return None
                kept[target], position = transform(to_rgb(frame)), target
        except av.error.FFmpegError:
            return None  # let the streaming pass decide whether the file is really broken
        finally:
            if frames is not None:
                frames.close()
    return kept


def _advance(frames, target_pts: int):
    """Decodes on to the frame stamped `target_pts`; None if it is skipped or missing."""
    for frame in frames:
        if frame.pts is None or frame.pts > target_pts:
            return None
        if frame.pts == target_pts:
            return frame
    return None
