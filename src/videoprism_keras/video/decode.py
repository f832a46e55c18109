"""Decoding: any video file (or frames you already have) → the few RGB frames we need.

The default reproduces the official colab exactly: every frame decoded as RGB
(PyAV `rgb24`, FFmpeg inside its wheel), indices
`np.linspace(0, n, num_frames, endpoint=False).astype(int32)`, each frame resized
with PIL's Lanczos on uint8, then / 255. We never hold all frames: the frame
count comes from the container (or a packet count, which decodes nothing), then
one streaming pass keeps only the wanted frames, already resized. Long videos
seek to each wanted frame instead of decoding everything in between.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frames import IMAGE_SUFFIXES, RESIZE_MODES, fit_frame

SEEK_ABOVE_FRAMES = 3000  # ~2 minutes at 25 fps: past this, seeking beats decoding all


class VideoDecodeError(ValueError):
    """A video could not be read: names the file and the cause."""

    def __init__(self, path, cause):
        self.path, self.cause = str(path), cause
        super().__init__(f"{self.path}: {cause}")


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # exact when counted, else the container's figure
    fps: float
    duration: float  # seconds
    width: int
    height: int
    rotation: int  # degrees, counter-clockwise, from the display matrix


def sample_indices(num_available: int, num_frames: int) -> np.ndarray:
    """The official uniform sampling (repeats frames when the video is short)."""
    return np.linspace(0, num_available, num_frames, endpoint=False).astype(np.int32)


def _open(path):
    import av

    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory without image files, not a video")
    try:
        container = av.open(str(path), timeout=30)
    except av.error.FFmpegError as err:
        raise VideoDecodeError(path, f"not a readable video file ({err})") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame-level threading inside FFmpeg
    return container, stream


def probe(path, exact=True) -> VideoInfo:
    """Frame count, rate, duration, size and rotation; `exact` counts packets if needed."""
    container, stream = _open(path)
    with container:
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        duration = duration or (container.duration or 0) / 1e6
        count = stream.frames
        if not count and exact:  # mkv/webm carry no count: count packets, decode nothing
            count = sum(1 for packet in container.demux(stream) if packet.size)
        count = count or round(duration * fps)
        rotation = 0
        try:
            rotation = int(next(container.decode(stream)).rotation or 0) if count else 0
        except Exception:
            rotation = 0
        return VideoInfo(count, fps, duration or count / fps, stream.width, stream.height, rotation)


def _rgb(frame) -> np.ndarray:
    image = frame.to_ndarray(format="rgb24")
    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    return np.rot90(image, k=rotation // 90) if rotation else image  # as FFmpeg's autorotate


def stream_frames(path, wanted, transform):
    """{index: transform(rgb)} for every index in `wanted`, in one decoding pass.

    Returns the map and the number of frames actually decoded.
    """
    import av

    wanted, last = set(int(i) for i in wanted), max(wanted)
    kept, decoded = {}, 0
    container, stream = _open(path)
    with container:
        try:
            for decoded, frame in enumerate(container.decode(stream), start=1):
                index = decoded - 1
                if index in wanted:
                    kept[index] = transform(_rgb(frame))
                if index >= last:
                    break
        except av.error.FFmpegError as err:  # a truncated or corrupt stream: keep what decoded
            if not kept and decoded == 0:
                raise VideoDecodeError(path, f"no frame could be decoded ({err})") from None
    return kept, decoded


def seek_frames(path, wanted, transform, fps):
    """Like `stream_frames`, seeking to each frame by timestamp (constant frame rate).

    Returns None if the stream's timestamps do not map onto frame indices, so the
    caller can fall back to streaming (exact in every case).
    """
    kept = {}
    container, stream = _open(path)
    with container:
        start = stream.start_time or 0
        base = float(stream.time_base)
        for index in sorted(set(int(i) for i in wanted)):
            target = start + round(index / fps / base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    return None
                position = round((frame.pts - start) * base * fps)
                if position == index:
                    kept[index] = transform(_rgb(frame))
                    break
                if position > index:
                    return None
            else:
                return None
    return kept


def read_frames(source, num_frames, transform, pad=False):
    """Sampled frames of a file, folder or GIF → (list of arrays, frame mask)."""
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES | {".gif"}:
        return _read_images(path, num_frames, transform, pad)
    info = probe(path)
    count = info.num_frames
    if count <= 0:
        raise VideoDecodeError(path, "zero decodable frames")
    indices, mask = _choose(count, num_frames, pad)
    kept = None
    if count > SEEK_ABOVE_FRAMES and not pad:
        kept = seek_frames(path, indices, transform, info.fps)
    if kept is None:
        kept, decoded = stream_frames(path, indices, transform)
        if decoded and len(kept) < len(set(indices.tolist())) and decoded < count:
            # The container promised more frames than decode (a truncated file): sample
            # from what really decodes, as decoding everything would have.
            indices, mask = _choose(decoded, num_frames, pad)
            kept, _ = stream_frames(path, indices, transform)
    if not kept:
        raise VideoDecodeError(path, "zero decodable frames")
    return [kept[int(i)] for i in indices], mask


def _choose(count, num_frames, pad):
    if pad and count < num_frames:
        return np.arange(count, dtype=np.int32), np.r_[np.ones(count), np.zeros(num_frames - count)]
    return sample_indices(count, num_frames), np.ones(num_frames)


def _read_images(path, num_frames, transform, pad):
    from PIL import Image, ImageSequence

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise VideoDecodeError(path, "is a directory without image files, not a video")
        indices, mask = _choose(len(files), num_frames, pad)
        load = lambda i: np.asarray(Image.open(files[i]).convert("RGB"))  # noqa: E731
        return [transform(load(int(i))) for i in indices], mask
    try:
        image = Image.open(path)
    except (OSError, ValueError) as err:
        raise VideoDecodeError(path, f"not a readable image or GIF ({err})") from None
    frames = getattr(image, "n_frames", 1)
    indices, mask = _choose(frames, num_frames, pad)
    cache = {}
    for i, frame in enumerate(ImageSequence.Iterator(image)):
        if i in set(indices.tolist()):
            cache[i] = transform(np.asarray(frame.convert("RGB")))
    return [cache[int(i)] for i in indices], mask


def is_video_path(value) -> bool:
    return isinstance(value, str | os.PathLike)


def fit(size, resize_mode):
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; got {resize_mode!r}")
    return lambda rgb: fit_frame(rgb, size, resize_mode)
