"""The public entry points: one video, a long video's clips, many videos in batches."""

import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import VideoDecodeError, _choose, _open, _rgb, fit, probe, read_frames
from .frames import as_frame_array


def _finish(frames, dtype):
    array = np.stack(frames)
    if dtype == "uint8":
        if array.dtype != np.uint8:
            raise ValueError("dtype='uint8' needs uint8 input frames")
        return array
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


def load_video(source, num_frames=16, size=(288, 288), resize_mode="center_crop", pad=False,
               dtype="float32"):  # fmt: skip
    """One video → (num_frames, H, W, 3), float32 in [0, 1] (or uint8 with dtype="uint8").

    Args:
        source: a video file (anything FFmpeg reads), a GIF, a folder of image
            files (sorted by name), a (T, H, W, 3) array (uint8, or float in
            [0, 1]) or a list of frames / PIL images.
        num_frames: frames sampled uniformly, as the official code does; a shorter
            video repeats frames.
        size: (height, width) of the output frames.
        resize_mode: "center_crop" (default), "squash" or "pad", for frames whose
            aspect ratio differs from `size` (see `videoprism_keras.video.frames`).
        pad: for videos shorter than `num_frames`, keep each frame once and append
            black frames; returns `(frames, frame_padding_mask)` with 1 = real frame.

    Raises `VideoDecodeError` (a ValueError) naming the file and the cause.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive; got {num_frames}")
    transform = fit(tuple(size), resize_mode)
    if isinstance(source, str | Path):
        frames, mask = read_frames(source, num_frames, transform, pad)
    else:
        array = as_frame_array(source)
        indices, mask = _choose(len(array), num_frames, pad)
        frames = [transform(array[i]) for i in indices]
    if pad and len(frames) < num_frames:
        frames += [np.zeros_like(frames[0])] * (num_frames - len(frames))
    video = _finish(frames, dtype)
    return (video, mask.astype(np.int32)) if pad else video


@dataclass
class Clip:
    start: float  # seconds
    end: float
    frames: np.ndarray  # (num_frames, H, W, 3)
    frame_padding_mask: np.ndarray  # (num_frames,), 1 = real frame


def iter_clips(path, clip_seconds, stride_seconds=None, num_frames=16, size=(288, 288),
               resize_mode="center_crop", pad=False, dtype="float32"):  # fmt: skip
    """A long video → windows of `clip_seconds` every `stride_seconds`, in one decoding pass.

    Each window samples `num_frames` of the frames whose time falls inside it (the
    official uniform sampling within the window); frame times assume the stream's
    average frame rate. Only the frames of the windows still open are kept.
    """
    if clip_seconds <= 0 or (stride_seconds is not None and stride_seconds <= 0):
        raise ValueError("clip_seconds and stride_seconds must be positive")
    stride = stride_seconds or clip_seconds
    info = probe(path)
    transform = fit(tuple(size), resize_mode)
    windows = []  # (start_s, end_s, indices, mask)
    for k in range(max(1, math.ceil(info.duration / stride))):
        start = k * stride
        end = min(start + clip_seconds, info.duration)
        first, stop = (
            math.ceil(start * info.fps - 1e-9),
            min(info.num_frames, math.ceil(end * info.fps - 1e-9)),
        )
        if stop <= first:
            continue
        indices, mask = _choose(stop - first, num_frames, pad)
        windows.append((start, end, indices + first, mask))
    if not windows:
        raise VideoDecodeError(path, "zero decodable frames")
    wanted = {int(i) for w in windows for i in w[2]}
    kept, pending = {}, deque(windows)
    container, stream = _open(path)
    with container:
        index = -1
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                kept[index] = transform(_rgb(frame))
            while pending and pending[0][2].max() <= index:
                yield _clip(pending.popleft(), kept, num_frames, dtype)
                low = min((int(w[2].min()) for w in pending), default=index + 1)
                kept = {i: f for i, f in kept.items() if i >= low}
            if not pending:
                return
    for window in pending:  # the container overstated its frames: use what decoded
        window = (window[0], window[1], np.minimum(window[2], max(kept, default=0)), window[3])
        if kept:
            yield _clip(window, kept, num_frames, dtype)


def _clip(window, kept, num_frames, dtype):
    start, end, indices, mask = window
    frames = [kept[int(i)] for i in indices if int(i) in kept]
    frames += [np.zeros_like(frames[0])] * (num_frames - len(frames))
    return Clip(start, end, _finish(frames, dtype), mask.astype(np.int32))


class VideoBatchLoader:
    """Batches of decoded videos, decoded by background threads while you use the last one.

    Iterating yields `{"pixel_values": (B, T, H, W, 3), "paths": [...]}` (plus
    `"frame_padding_mask"` with `pad=True`). With `on_error="skip"` a file that
    fails is left out and recorded in `failures` as (path, message).
    """

    def __init__(self, sources, batch_size=4, num_frames=16, size=(288, 288),
                 resize_mode="center_crop", pad=False, workers=2, progress=False,
                 on_error="raise"):  # fmt: skip
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
        self.sources, self.batch_size, self.workers = list(sources), batch_size, workers
        self.options = dict(num_frames=num_frames, size=size, resize_mode=resize_mode, pad=pad)
        self.progress, self.on_error, self.failures = progress, on_error, []

    def __len__(self):
        return math.ceil(len(self.sources) / self.batch_size)

    def _load(self, source):
        try:
            return source, load_video(source, **self.options), None
        except (ValueError, OSError) as err:
            return source, None, err

    def __iter__(self):
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(self.sources), unit="video", desc="decoding")
        with ThreadPoolExecutor(self.workers) as pool:
            queue, todo = deque(), iter(self.sources)
            for source in todo:  # keep two batches decoding ahead
                queue.append(pool.submit(self._load, source))
                if len(queue) >= 2 * self.batch_size:
                    break
            batch = []
            while queue:
                source, video, error = queue.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    queue.append(pool.submit(self._load, nxt))
                if bar is not None:
                    bar.update(1)
                if error is not None:
                    if self.on_error == "raise":
                        raise error
                    self.failures.append((str(source), str(error)))
                    continue
                batch.append((source, video))
                if len(batch) == self.batch_size:
                    yield self._collate(batch)
                    batch = []
            if batch:
                yield self._collate(batch)
        if bar is not None:
            bar.close()

    def _collate(self, batch):
        out = {"paths": [str(s) if isinstance(s, str | Path) else "<array>" for s, _ in batch]}
        if self.options["pad"]:
            out["pixel_values"] = np.stack([v[0] for _, v in batch])
            out["frame_padding_mask"] = np.stack([v[1] for _, v in batch])
        else:
            out["pixel_values"] = np.stack([v for _, v in batch])
        return out
