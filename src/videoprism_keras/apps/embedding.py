"""Videos (files or arrays) → embeddings with their file names and clip times.

    kind="video"     (N, D)        LvT: the pooled, L2-normalised video embedding;
                                   video-only models: the mean of the features
    kind="frames"    (N, T, D)     LvT: the pooler applied to each frame (normalised);
                                   video-only models: the mean over each frame's patches
    kind="features"  (N, T, P, D)  the spatiotemporal features

With `clip_seconds`, every video is cut into windows (one row per window), so a
long video becomes a series of embeddings with timestamps.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..constants import EMBED_KINDS
from ..deprecation import message as deprecation_message
from ..deprecation import renamed_arguments, renamed_attribute
from ..extras import require
from ..video.options import Sampling
from ..video.times import seconds_or_none, time_key

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ..model.backbone import VideoPrismBackbone
    from ..progress import ClipTotal
    from ..runtime import Encoder

# What `embed_videos` takes: one path, or paths and (T, H, W, 3) arrays.
Videos = str | os.PathLike | Sequence[str | os.PathLike | np.ndarray]
# Items to leave out: `item_key`s, or a function of (path, start_s, end_s).
Exclude = Iterable[tuple] | Callable[[str, float | None, float | None], bool]
VIDEO_SUFFIXES = frozenset(".mp4 .mkv .webm .avi .mov .m4v .mpg .mpeg .gif .flv .wmv .3gp".split())


def nothing_embedded(failures: Sequence[tuple[str, str]]) -> ValueError:
    """The error of a run in which every input failed: how many, and the first reason
    (each failure has its own line where the caller reports them)."""
    if not failures:
        return ValueError("no video could be embedded: no input was given")
    path, reason = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return ValueError(f"no video could be embedded: {path}: {reason}{more}")


def check_shot_windows(shots: bool, clip_seconds: float | None,
                       stride_seconds: float | None) -> None:  # fmt: skip
    """With `shots`: `clip_seconds` given (the longest window), no `stride_seconds` (the
    windows follow the cuts), and PySceneDetect installed (the `shots` extra)."""
    if not shots:
        return
    if not clip_seconds:
        raise ValueError("shots=True cuts videos into shots of at most clip_seconds: give "
                         "clip_seconds (the longest window, in seconds). Received: "
                         f"clip_seconds={clip_seconds!r}")  # fmt: skip
    if stride_seconds is not None:
        raise ValueError(
            "with shots=True the windows follow the shots, with no stride: "
            f"leave stride_seconds out. Received: stride_seconds={stride_seconds!r}"
        )
    require(("scenedetect-headless",), "shots=True")


def find_videos(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Video files and folders → the inputs to embed, in order.

    A folder is walked recursively for video files (sorted); a folder holding image
    files and no video is one video, its frames (as `load_video` reads it). A file is
    taken as it is, whatever its suffix; what cannot be read fails later, on its own.
    Raises `FileNotFoundError` for a missing source or a symlink that dangles or loops
    (saying which), and `ValueError` for a folder holding neither videos nor images
    (unless it is named like a video: taken, it fails later on its own).
    """
    from ..video.images import is_image_source

    files = []
    for source in map(Path, [sources] if isinstance(sources, str | os.PathLike) else sources):
        if source.is_dir():
            found = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found and source.suffix.lower() in VIDEO_SUFFIXES:
                files.append(source)  # named like a video: it fails on its own, later
                continue
            if not found and not is_image_source(source):
                raise ValueError(f"{source} holds no video files and no image frames")
            files += found or [source]
        elif os.path.islink(source) and not source.exists():
            raise FileNotFoundError(f"{source}: {_broken_link(source)}")
        elif not source.exists():
            raise FileNotFoundError(f"{source}: no such file or directory")
        else:
            files.append(source)
    return [str(f) for f in files]


def _broken_link(path: Path) -> str:
    try:
        os.path.realpath(path, strict=True)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symbolic link loop"
    return f"a dangling symbolic link (to {os.readlink(path)})"


def item_key(path: str | os.PathLike, start_s: float | None,
             end_s: float | None) -> tuple[str, float | None, float | None]:  # fmt: skip
    """What identifies an embedded item: its path and clip times (rounded to the
    microsecond; None for a whole video)."""
    return str(path), time_key(start_s), time_key(end_s)


def _times(values: ArrayLike | None, n: int) -> np.ndarray:
    """Clip times as an (n,) float array: NaN where there is none (numpy makes None NaN)."""
    return np.full(n, np.nan) if values is None else np.asarray(values, float)


@dataclass
class Embeddings:
    """Embeddings with the file and clip times of each row.

    Args:
        vectors: (N, ...) array. The embeddings (see the module docstring for the kinds).
        paths: list of str. Each row's input (`<array>` for an array). Defaults to [].
        start_s: (N,) float array or None. Each clip's start in seconds; NaN (or None)
            for a whole video. Defaults to None (all whole videos).
        end_s: (N,) float array or None. Each clip's end. Defaults to None.
        kind: str. "video", "frames" or "features". Defaults to "video".
        failures: list of (path, reason). Inputs that could not be embedded. Defaults
            to [].
        skipped: int. Items left out because `exclude` listed them (an index or an
            output already held them). Defaults to 0.
    """

    vectors: np.ndarray
    paths: list = field(default_factory=list)
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None
    kind: str = "video"
    failures: list = field(default_factory=list)
    skipped: int = 0

    starts = renamed_attribute("start_s")  # the names before `start_s`/`end_s`
    ends = renamed_attribute("end_s")

    def __post_init__(self) -> None:
        n = len(self.vectors)
        self.start_s, self.end_s = _times(self.start_s, n), _times(self.end_s, n)

    def __len__(self) -> int:
        return len(self.vectors)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the embeddings to `path`, in the format its suffix names.

        `.npz` (arrays vectors, paths, start_s, end_s, kind), `.parquet` (a row per
        item: path, start_s, end_s, embedding; kind and shape in the metadata) or `.npy`
        (the vectors, as a plain array any tool reads) with a `<name>.json` sidecar
        holding kind, shape, paths, start_s and end_s (null for a whole video).

        Args:
            path: str or path. The file to write.

        Returns:
            The file's path.
        """
        path = Path(path)
        if path.suffix == ".npy":
            np.save(path, self.vectors)
            sidecar = {"kind": self.kind, "shape": list(self.vectors.shape),
                       "paths": list(map(str, self.paths)),
                       "start_s": [seconds_or_none(t) for t in self.start_s],
                       "end_s": [seconds_or_none(t) for t in self.end_s]}  # fmt: skip
            path.with_suffix(".json").write_text(json.dumps(sidecar))
        elif path.suffix == ".npz":
            np.savez(path, vectors=self.vectors, paths=np.array(self.paths, dtype=str),
                     start_s=self.start_s, end_s=self.end_s,
                     kind=np.array(self.kind))  # fmt: skip
        elif path.suffix == ".parquet":
            require(("pyarrow",), "Embeddings.save to .parquet")
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = self.vectors.reshape(len(self), -1)
            column = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
            table = pa.table({"path": self.paths, "start_s": self.start_s, "end_s": self.end_s,
                              "embedding": column})  # fmt: skip
            meta = {b"kind": self.kind.encode(), b"shape": str(self.vectors.shape[1:]).encode()}
            pq.write_table(table.replace_schema_metadata(meta), path)
        else:
            raise ValueError(f"unknown embedding file type {path.suffix!r}: use .npy, .npz or "
                             f".parquet. Received: {path}")  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Embeddings:
        """Reads what `save` (or `videoprism embed`) wrote: .npy (with or without its
        sidecar), .npz or .parquet. A `.npz` of an earlier release (its times in
        arrays `starts`/`ends`) reads too.

        Args:
            path: str or path. The file.
        """
        path = Path(path)
        if path.suffix == ".npy":
            sidecar = path.with_suffix(".json")
            if not sidecar.is_file():
                return cls(np.load(path))
            meta = json.loads(sidecar.read_text())
            return cls(np.load(path), meta["paths"], meta["start_s"], meta["end_s"],
                       meta["kind"])  # fmt: skip
        if path.suffix == ".npz":
            d = np.load(path)
            return cls(d["vectors"], list(d["paths"]), *times_of(d), str(d["kind"]))
        if path.suffix == ".parquet":
            require(("pyarrow",), "Embeddings.load of .parquet")
            import ast

            import pyarrow.parquet as pq

            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            shape = ast.literal_eval(meta.get(b"shape", b"()").decode()) or (-1,)
            flat = np.asarray(table["embedding"].combine_chunks().flatten()).reshape(len(table), -1)
            return cls(flat.reshape(len(table), *shape), table["path"].to_pylist(),
                       np.asarray(table["start_s"]), np.asarray(table["end_s"]),
                       meta.get(b"kind", b"video").decode())  # fmt: skip
        raise ValueError(f"unknown embedding file type {path.suffix!r}: use .npy, .npz or "
                         f".parquet. Received: {path}")  # fmt: skip


Embeddings.__init__ = renamed_arguments(starts="start_s", ends="end_s")(Embeddings.__init__)


def times_of(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(start_s, end_s) of a `.npz` of embeddings: its `start_s`/`end_s` arrays, or the
    `starts`/`ends` that releases before them wrote."""
    if "start_s" in arrays:
        return arrays["start_s"], arrays["end_s"]
    return arrays["starts"], arrays["ends"]


def select(model: VideoPrismBackbone, outputs: dict, kind: str) -> np.ndarray:
    """The `kind` of embedding out of `encode_video`'s outputs."""
    if kind not in EMBED_KINDS:
        raise ValueError(f"kind must be one of {EMBED_KINDS}; got {kind!r}")
    features = outputs["spatiotemporal_features"]
    if kind == "features":
        return features
    if model.is_multimodal:
        return outputs["vision_embeddings" if kind == "video" else "frame_embeddings"]
    return features.mean(axis=(1, 2)) if kind == "video" else features.mean(axis=2)


def _whole_videos(videos, sampling: Sampling, batch_size, failures, on_error):
    """Whole videos, decoded in background threads while the model runs."""
    from ..video import VideoBatchLoader

    loader = VideoBatchLoader(videos, batch_size, sampling.num_frames, sampling.size,
                              on_error=on_error)  # fmt: skip
    for batch in loader:
        for path, frames in zip(batch["paths"], batch["pixel_values"], strict=True):
            yield path, np.nan, np.nan, frames, True
    failures += loader.failures


def _clips(videos, sampling: Sampling, clip_seconds, stride_seconds, failures, on_error,
           counted: ClipTotal | None = None, shots: bool = False):  # fmt: skip
    from ..video import iter_clips
    from ..video.loader import describe_failure
    from ..video.shots import video_shots

    for position, source in enumerate(videos):
        cut = 0
        try:
            held = None  # one clip of look-ahead: the last one of a file is marked as such
            windows = video_shots(source, clip_seconds) if shots else None
            clips = iter_clips(source, clip_seconds, stride_seconds, sampling.num_frames,
                               sampling.size, windows=windows)  # fmt: skip
            for clip in clips:
                if held is not None:
                    yield held
                    cut += 1
                held = str(source), clip.start_s, clip.end_s, clip.frames, False
            if held is not None:
                yield (*held[:4], True)
                cut += 1
        except (ValueError, OSError) as err:
            if on_error == "raise":
                raise
            failures.append((str(source), describe_failure(err)))
        finally:
            if counted is not None:  # the file's real count replaces its estimate
                counted.cut(position, cut)


def _without(items: Iterator, exclude, skipped: list) -> Iterator:
    for item in items:
        if exclude(*item[:3]):
            skipped[0] += 1
        else:
            yield item


def in_background(items: Iterator, ahead: int) -> Iterator:
    """Runs the `items` generator in a thread, at most `ahead` items ahead of the consumer,
    so that decoding (PyAV and PIL release the GIL) overlaps the model. Its errors are
    raised in the consumer; stopping early stops the thread.

    Args:
        items: iterator. What the thread produces.
        ahead: int. Items produced ahead of the consumer, at most (1 at least).
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop, end = threading.Event(), object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def produce():
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((None, end))
        except BaseException as err:  # handed to the consumer, raised there
            put((err, None))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="clip-decode", daemon=True)
    thread.start()
    try:
        while True:
            err, item = buffer.get()
            if err is not None:
                raise err
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _batches(items: Iterator, batch_size: int) -> Iterable[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Batch:
    """One embedded batch, as `embed_batches` yields it.

    Attributes:
        vectors: (B, ...) array. The embeddings.
        paths: list of str. Each item's input.
        start_s: list of float. Each clip's start in seconds; NaN for a whole video.
        end_s: list of float. Each clip's end.
        frames: (B, T, H, W, 3) float32 array. The model's input, in [0, 1].
        last: list of bool. Whether each item is its file's last clip (True for a whole
            video).
    """

    vectors: np.ndarray
    paths: list
    start_s: list
    end_s: list
    frames: np.ndarray
    last: list

    starts = renamed_attribute("start_s")  # the names before `start_s`/`end_s`
    ends = renamed_attribute("end_s")


Batch.__init__ = renamed_arguments(starts="start_s", ends="end_s")(Batch.__init__)


def embed_videos(model: VideoPrismBackbone, videos: Videos, kind: str = "video",
                 batch_size: int = 4, num_frames: int | None = None,
                 size: int | Sequence[int] | None = None, clip_seconds: float | None = None,
                 stride_seconds: float | None = None, progress: bool = True,
                 on_error: str = "raise", encoder: Encoder | None = None,
                 exclude: Exclude | None = None) -> Embeddings:  # fmt: skip
    """Embeds video files or arrays in batches.

    Args:
        model: `VideoPrismBackbone`. The model.
        videos: path, or sequence of paths and/or (T, H, W, 3) arrays (uint8, or float
            in [0, 1]).
        kind: str. "video", "frames" or "features" (see the module docstring).
            Defaults to "video".
        batch_size: int. Items per model call. Defaults to 4.
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        clip_seconds: float or None. Cut files (not arrays) into windows of this many
            seconds, one row each, decoded in a background thread while the model runs;
            None for whole videos. Defaults to None.
        stride_seconds: float or None. The windows' stride. Defaults to None
            (`clip_seconds`).
        progress: bool. Show a progress bar (needs tqdm). Defaults to True.
        on_error: str. "raise", or "skip" to record failures in
            `Embeddings.failures`. Defaults to "raise".
        encoder: `Encoder` or None. The compiled model calls. Defaults to None (a new
            `Encoder(model)`).
        exclude: set of `item_key`s, callable `(path, start_s, end_s) -> bool` or
            None. Items to leave out without running the model (e.g. what an index
            already holds); `Embeddings.skipped` counts them. Defaults to None.

    Returns:
        `Embeddings`: the vectors with their paths and clip times, `failures` and
        `skipped`.
    """
    stream = embed_batches(model, videos, kind=kind, batch_size=batch_size,
                           num_frames=num_frames, size=size, clip_seconds=clip_seconds,
                           stride_seconds=stride_seconds, progress=progress,
                           on_error=on_error, encoder=encoder, exclude=exclude)  # fmt: skip
    vectors, paths, start_s, end_s = [], [], [], []
    for batch in stream:
        vectors.append(batch.vectors)
        paths += batch.paths
        start_s += batch.start_s
        end_s += batch.end_s
    if not vectors:
        if not stream.skipped:
            raise nothing_embedded(stream.failures)
        vectors = [np.zeros((0, 0), np.float32)]  # everything was excluded
    return Embeddings(np.concatenate(vectors), paths, start_s, end_s, kind, stream.failures,
                      stream.skipped)  # fmt: skip


class BatchStream:
    """What `embed_batches` returns: iterate it for the `Batch`es as they are embedded.

    Attributes:
        failures: list of (path, reason). The inputs that could not be embedded, as
            they are met (all of them once the iteration ends).
        skipped: int. Items left out because `exclude` listed them, so far.
    """

    def __init__(self, batches: Iterator[Batch], failures: list[tuple[str, str]],
                 skipped: list[int]) -> None:  # fmt: skip
        self.failures = failures
        self._batches = batches
        self._skipped = skipped  # one item: a counter the decoding thread bumps

    @property
    def skipped(self) -> int:
        return self._skipped[0]

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        return next(self._batches)

    def close(self) -> None:
        """Stops early: the decoding thread ends and the progress bar closes."""
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


def embed_batches(model: VideoPrismBackbone, videos: Videos, *, kind: str = "video",
                  batch_size: int = 4, num_frames: int | None = None,
                  size: int | Sequence[int] | None = None, clip_seconds: float | None = None,
                  stride_seconds: float | None = None, progress: bool = True,
                  on_error: str = "raise", encoder: Encoder | None = None,
                  exclude: Exclude | None = None, failures: list | None = None,
                  skipped: list | None = None, shots: bool = False) -> BatchStream:  # fmt: skip
    """`embed_videos` one batch at a time, for whoever writes them out as they come.

        stream = embed_batches(model, files, clip_seconds=10, on_error="skip")
        for batch in stream:
            writer.write(batch)
        print(stream.failures, stream.skipped)

    The arguments are `embed_videos`'s (keyword-only after `videos`); they are checked
    here, and nothing is decoded until the iteration starts. With clips, `exclude` is
    called once a file is scanned, before the model runs.

    Args:
        shots: bool. With `clip_seconds`: windows at the files' shot cuts (`video.shots`;
            the `shots` extra), long shots split to at most `clip_seconds`, in place of
            the stride's. Defaults to False.
        failures: list or None. Deprecated: read the stream's `failures` instead (a
            list given here is filled in as before). Defaults to None.
        skipped: one-item list or None. Deprecated: read the stream's `skipped`
            instead (`skipped[0]` is counted up as before). Defaults to None.

    Returns:
        A `BatchStream`: the batches, then `failures` and `skipped`.
    """
    for name, given in (("failures", failures), ("skipped", skipped)):
        if given is not None:
            warnings.warn(deprecation_message("embed_batches", name, f"BatchStream.{name}"),
                          DeprecationWarning, stacklevel=2)  # fmt: skip
    if isinstance(videos, str | os.PathLike):
        videos = [videos]
    videos = list(videos)
    check_shot_windows(shots, clip_seconds, stride_seconds)
    if clip_seconds:
        arrays = [i for i, v in enumerate(videos) if not isinstance(v, str | os.PathLike)]
        if arrays:
            raise ValueError(
                f"clip_seconds cuts video files by their timestamps; videos[{arrays[0]}] is a "
                f"{type(videos[arrays[0]]).__name__}: embed arrays whole, or slice them first"
            )
    sampling = Sampling.for_model(model, num_frames, size)
    if not callable(exclude):
        keys = set(exclude or ())
        exclude = lambda *item: item_key(*item) in keys  # noqa: E731
    failures = [] if failures is None else failures
    skipped = [0] if skipped is None else skipped
    # The generator holds the two lists, not the stream: dropping the stream ends it (and
    # its decoding thread) at once, with no reference cycle to wait for.
    batches = _embedded(failures, skipped, model, videos, kind, batch_size, sampling,
                        clip_seconds, stride_seconds, progress, on_error, encoder,
                        exclude, shots)  # fmt: skip
    return BatchStream(batches, failures, skipped)


def _embedded(failures, skipped, model, videos, kind, batch_size, sampling, clip_seconds,
              stride_seconds, progress, on_error, encoder, exclude,
              shots=False) -> Iterator[Batch]:  # fmt: skip
    """The batches of `embed_batches`; `failures` and `skipped[0]` grow as they go."""
    from ..progress import ClipTotal, progress_bar

    counted = None
    if clip_seconds:
        # Counted first (the files' stated durations), so that the bar shows its total.
        counted = ClipTotal(videos, clip_seconds, stride_seconds) if progress else None
        items = _clips(videos, sampling, clip_seconds, stride_seconds, failures, on_error,
                       counted, shots)  # fmt: skip
        items = in_background(_without(items, exclude, skipped), ahead=2 * batch_size)
    else:
        done = lambda v: isinstance(v, str | os.PathLike) and exclude(v, None, None)  # noqa: E731
        kept = [v for v in videos if not done(v)]
        skipped[0] += len(videos) - len(kept)
        items = _whole_videos(kept, sampling, batch_size, failures, on_error)
    if encoder is None:
        # Keras only here: `find_videos`, which the CLI runs before anything loads, needs none.
        from ..runtime import Encoder

        encoder = Encoder(model)

    def left() -> int | None:
        """The items to embed, as far as known now: what was already held, and (once
        read) what failed, left out."""
        if clip_seconds:
            return counted.total - skipped[0] if counted is not None else None
        return len(kept) - len(failures)

    bar = progress_bar(progress, left())
    try:
        for batch in _batches(items, batch_size):
            frames = np.stack([b[3] for b in batch])
            outputs = encoder.video(frames)
            yield Batch(np.asarray(select(model, outputs, kind)), [b[0] for b in batch],
                        [b[1] for b in batch], [b[2] for b in batch], frames,
                        [b[4] for b in batch])  # fmt: skip
            bar.total = left()
            bar.update(len(batch))
        bar.total = left()  # every file read: exact now (shown on close)
    finally:
        bar.close()
