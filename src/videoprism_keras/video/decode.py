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

Damage policy: strict about what FFmpeg or the file itself can prove, silent about
what neither can. A partly downloaded or damaged video must not pass as a shorter
one, yet a healthy file must never be refused. FFmpeg's own command line (which the
official reader runs) reports nothing and carries on; here it is an error when

- FFmpeg fails to open, demux or decode (it raises), or the demuxer flags a video
  packet as corrupt;
- the container lists a frame count and the file holds fewer frames (MP4, MOV, AVI);
- the container lists none but states a duration (Matroska, WebM, FLV...), and the
  packets of all its streams together end more than `max(1 s, 1 %, the longest gap
  between two frames)` before it. Truncation cuts the interleaved streams at the
  same byte, so all streams count (a video track may end before its audio track);
  the margin covers a last frame whose duration is not stored;
- a Matroska/WebM file's own index (its Cues) lists a video keyframe that reading
  the file did not reach: the demuxer skips a damaged region silently, resuming at
  the next cluster, and the Cues still point into it;
- the decoder flags a frame as damaged after it has output an undamaged one (frames
  flagged before that are a stream that starts mid-GOP, and are kept as FFmpeg does).
  A seek that lands on a flagged frame gives way to streaming, which decides.

Not detected: damage inside a frame's compressed data that the decoder conceals
without flagging the frame (MPEG-4 and H.264 flag it in our measurements, mostly;
VP9 never does; FFmpeg only logs it, and reading its log would mean a process-wide
callback that can deadlock decoding threads); damage in frames that seeking skips
(the frames returned are sound); and a file that states neither a frame count nor a
duration (a live recording) cut short. Such a file loads as a player shows it: with
artefacts, or shorter.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..deprecation import renamed_arguments, renamed_attribute
from ..extras import require
from .frames import Transform

if TYPE_CHECKING:
    import av


class VideoDecodeError(ValueError):
    """A video could not be read; `path` names the file and `cause` says why."""

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        self.path, self.cause = str(path), cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):  # picklable (process pools) despite the two-argument constructor
        return type(self), (self.path, self.cause)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` tells of a video.

    Attributes:
        num_frames: int. Frames; exact when the container or a packet scan counts them.
        fps: float. The average frame rate.
        duration_s: float. The duration in seconds.
        width: int. As stored; swap with height when `rotation` is ±90.
        height: int.
        rotation: int. Degrees counter-clockwise applied for display (display matrix).
    """

    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    rotation: int

    duration = renamed_attribute("duration_s")  # the name before `duration_s`


VideoInfo.__init__ = renamed_arguments(duration="duration_s")(VideoInfo.__init__)


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


def open_video(path: str | os.PathLike) -> tuple:
    """(container, video stream), or a `VideoDecodeError` saying why not.

    Refuses anything but a regular, non-empty file before FFmpeg sees it: a pipe or
    a device would block or never end, and an empty file has nothing to probe.
    """
    require(("av",), "reading a video")
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


def scan(path: str | os.PathLike) -> FrameIndex:
    """Reads every packet (decoding none) → a `FrameIndex` of the video stream.

    Packets that carry no frame (empty, or marked discard by an edit list) are not
    counted, as the decoder would not output them either. The packets of the other
    streams are read too (they are interleaved in the file anyway) to tell where the
    file really ends; see the damage policy above for the checks this makes.
    """
    import av

    container, stream = open_video(path)
    stamps, keys, count, packets, complete = array("q"), array("q"), 0, 0, True
    ends: dict[int, int] = {}  # stream index → latest pts + duration, in its time base
    video = stream.index
    with container:
        time_base, fps, listed = stream.time_base or Fraction(1, 1), _fps(stream), stream.frames
        try:
            for packet in container.demux():
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None:
                    end = stamp + (packet.duration or 0)
                    if end > ends.get(packet.stream_index, end - 1):
                        ends[packet.stream_index] = end
                if packet.stream_index != video:
                    continue
                if packet.is_corrupt:
                    raise _corrupt(path, count, "a damaged packet")
                packets += bool(packet.size)
                if not packet.size or packet.is_discard:
                    continue
                count += 1
                if stamp is None:
                    complete = False
                    continue
                stamps.append(stamp)
                if packet.is_keyframe:
                    keys.append(stamp)
        except av.error.FFmpegError as err:
            raise _corrupt(path, count, err) from None
        end_s = max((ends[i] * container.streams[i].time_base for i in ends), default=0)
        stated = _stated_duration(container)
        indexed = _indexed_keyframes(container, stream) if not listed else None
    _check_listed(path, listed, packets)
    pts = np.sort(np.frombuffer(stamps, np.int64)) if complete and count else None
    if not listed and count:
        step = float(np.diff(pts).max() * time_base) if pts is not None and len(pts) > 1 else 0
        _check_duration(path, stated, float(end_s), step)
        if indexed is not None:
            _check_indexed(path, indexed, np.frombuffer(stamps, np.int64), time_base)
    if pts is not None and len(pts) > 1 and not np.all(np.diff(pts) > 0):
        pts = None  # repeated timestamps: they cannot tell frames apart
    if pts is None:
        return FrameIndex(count, None, np.zeros(0, np.int64), Fraction(time_base), fps)
    keyframes = np.searchsorted(pts, np.frombuffer(keys, np.int64))
    return FrameIndex(count, pts, np.unique(keyframes), Fraction(time_base), fps)


def _stated_duration(container) -> tuple[float, float] | None:
    """(duration, start) in seconds as the container states them, or None."""
    if not container.duration or container.duration <= 0:
        return None
    return container.duration / 1e6, (container.start_time or 0) / 1e6


def _check_duration(path, stated, end: float, step: float) -> None:
    """A file whose packets end well before its stated duration was cut short.

    `end` is where the packets of all streams end (absolute time). Durations are
    spans, so a file starting after 0 only looks longer here: never a false alarm.
    """
    if stated is None:
        return
    duration, start = stated
    covered = end - min(start, 0.0)
    if duration - covered > max(1.0, 0.01 * duration, step):
        raise VideoDecodeError(
            path,
            f"truncated: its streams end at {covered:.2f} s, the container states {duration:.2f} s",
        )


def _indexed_keyframes(container, stream) -> np.ndarray | None:
    """The video keyframe timestamps a Matroska/WebM file's index (Cues) lists, if any.

    FFmpeg reads the Cues at the first seek; the packets are all read by then.
    """
    import av

    if "matroska" not in (container.format.name or ""):
        return None
    try:
        container.seek(0, stream=stream)
        entries = stream.index_entries
        return np.array([entries[i].timestamp for i in range(len(entries))], np.int64)
    except (av.error.FFmpegError, OSError):
        return None  # no usable index: nothing to compare with


def _check_indexed(path, indexed: np.ndarray, seen: np.ndarray, time_base) -> None:
    missing = np.setdiff1d(indexed, seen)
    if len(missing):
        at = ", ".join(f"{float(t * time_base):.2f} s" for t in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise VideoDecodeError(
            path,
            f"corrupt: its index lists keyframes at {at}{more} that reading the file "
            "did not reach (a damaged region was skipped)",
        )


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike, exact: bool = True) -> VideoInfo:
    """Frame count, frame rate, duration, size and rotation, decoding one frame at most.

    When the container does not store the frame count, `exact` counts packets (reads
    the file, decodes nothing); otherwise duration × fps estimates it.
    """
    container, stream = open_video(path)
    with container:
        fps = _fps(stream)
        duration = _duration(container, stream)
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


def stated_timing(path: str | os.PathLike) -> tuple[float, float]:
    """(duration in seconds, frame rate) as the container states them (0.0 where it does
    not): no frame decoded, no packet scan; for counting the work before doing it."""
    container, stream = open_video(path)
    with container:
        return _duration(container, stream), _fps(stream)


def _duration(container, stream) -> float:
    """The video stream's stated duration, else the container's, else 0.0."""
    duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    return duration or (container.duration or 0) / 1e6


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame → (H, W, 3) uint8 RGB, turned upright as a player would show it.

    PyAV's `frame.rotation` is the display matrix's counter-clockwise angle (phones
    store portrait video as landscape plus this matrix); `np.rot90` also turns
    counter-clockwise, which is what FFmpeg's own autorotation does.
    """
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def decoded_frames(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """Every frame of the video stream in presentation order; one file handle, closed on exit.

    Strict about damage, unlike FFmpeg's command line (which the official reader runs
    with errors silenced): a packet the demuxer flags as corrupt, a decoding error, a
    damaged frame after a sound one, or a file holding fewer frames than its container
    lists raises (the damage policy above), rather than letting a partly downloaded
    video pass as a shorter one.
    """
    import av

    container, stream = open_video(path)
    listed, packets, decoded, clean = stream.frames, 0, 0, False
    with container:
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    raise _corrupt(path, decoded, "a damaged packet")
                packets += bool(packet.size)
                for frame in packet.decode():
                    if not frame.is_corrupt:
                        clean = True
                    elif clean:  # before the first clean frame: a stream starting mid-GOP
                        raise _corrupt(path, decoded, "the decoder flagged a damaged frame")
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


def stream_frames(path: str | os.PathLike, wanted: Iterable[int], transform: Transform,
                  to_end: bool = False) -> tuple[dict[int, np.ndarray], int]:  # fmt: skip
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


def seek_frames(path: str | os.PathLike, wanted: Iterable[int], transform: Transform,
                index: FrameIndex) -> dict[int, np.ndarray] | None:  # fmt: skip
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
            return None if frame.is_corrupt else frame  # damaged: streaming decides
    return None
