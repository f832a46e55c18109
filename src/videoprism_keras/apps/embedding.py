"""Videos (files or arrays) → embeddings with their file names and clip times.

    kind="video"     (N, D)        LvT: the pooled, L2-normalised video embedding;
                                   video-only models: the mean of the features
    kind="frames"    (N, T, D)     LvT: the pooler applied to each frame (normalised);
                                   video-only models: the mean over each frame's patches
    kind="features"  (N, T, P, D)  the spatiotemporal features

With `clip_seconds`, every video is cut into windows (one row per window), so a
long video becomes a series of embeddings with timestamps.
"""

import errno
import json
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime import Encoder

KINDS = ("video", "frames", "features")
VIDEO_SUFFIXES = frozenset(".mp4 .mkv .webm .avi .mov .m4v .mpg .mpeg .gif .flv .wmv .3gp".split())


def nothing_embedded(failures) -> ValueError:
    """The error of a run in which every input failed: how many, and the first reason
    (each failure has its own line where the caller reports them)."""
    if not failures:
        return ValueError("no video could be embedded: no input was given")
    path, reason = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return ValueError(f"no video could be embedded: {path}: {reason}{more}")


def find_videos(sources) -> list[str]:
    """Video files and folders → the inputs to embed, in order.

    A folder is walked recursively for video files (sorted); a folder holding image
    files and no video is one video, its frames (as `load_video` reads it). A file is
    taken as it is, whatever its suffix; what cannot be read fails later, on its own.
    Raises `FileNotFoundError` for a missing source or a symlink that dangles or loops
    (saying which), and `ValueError` for a folder holding neither videos nor images.
    """
    from ..video.images import is_image_source

    files = []
    for source in map(Path, [sources] if isinstance(sources, str | os.PathLike) else sources):
        if source.is_dir():
            found = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
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


def item_key(path, start, end) -> tuple:
    """What identifies an embedded item: its path and clip times (None for a whole video)."""
    time = lambda t: None if t is None or np.isnan(t) else round(float(t), 6)  # noqa: E731
    return str(path), time(start), time(end)


@dataclass
class Embeddings:
    vectors: np.ndarray
    paths: list = field(default_factory=list)
    starts: np.ndarray = None  # seconds; NaN for a whole video
    ends: np.ndarray = None
    kind: str = "video"
    failures: list = field(default_factory=list)  # (path, error) of inputs that failed
    skipped: int = 0  # items left out because `embed_videos(exclude=...)` listed them

    def __post_init__(self):
        n = len(self.vectors)
        self.starts = np.full(n, np.nan) if self.starts is None else np.asarray(self.starts, float)
        self.ends = np.full(n, np.nan) if self.ends is None else np.asarray(self.ends, float)

    def __len__(self):
        return len(self.vectors)

    def save(self, path) -> Path:
        """`.npz` (vectors, paths, starts, ends, kind), `.parquet` (a row per item: path,
        start_s, end_s, embedding) or `.npy` (the vectors, as a plain array any tool reads)
        with a `<name>.json` sidecar holding kind, paths and clip times."""
        path = Path(path)
        if path.suffix == ".npy":
            np.save(path, self.vectors)
            times = lambda ts: [None if np.isnan(t) else float(t) for t in ts]  # noqa: E731
            sidecar = {"kind": self.kind, "shape": list(self.vectors.shape),
                       "paths": list(map(str, self.paths)), "start_s": times(self.starts),
                       "end_s": times(self.ends)}  # fmt: skip
            path.with_suffix(".json").write_text(json.dumps(sidecar))
        elif path.suffix == ".npz":
            np.savez(path, vectors=self.vectors, paths=np.array(self.paths, dtype=str),
                     starts=self.starts, ends=self.ends, kind=np.array(self.kind))  # fmt: skip
        elif path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = self.vectors.reshape(len(self), -1)
            column = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
            table = pa.table({"path": self.paths, "start_s": self.starts, "end_s": self.ends,
                              "embedding": column})  # fmt: skip
            meta = {b"kind": self.kind.encode(), b"shape": str(self.vectors.shape[1:]).encode()}
            pq.write_table(table.replace_schema_metadata(meta), path)
        else:
            raise ValueError(
                f"unknown embedding file type {path.suffix!r}: use .npy, .npz or .parquet"
            )
        return path

    @classmethod
    def load(cls, path) -> "Embeddings":
        path = Path(path)
        if path.suffix == ".npy":
            sidecar = path.with_suffix(".json")
            if not sidecar.is_file():
                return cls(np.load(path))
            meta = json.loads(sidecar.read_text())
            times = lambda ts: [np.nan if t is None else t for t in ts]  # noqa: E731
            return cls(np.load(path), meta["paths"], times(meta["start_s"]),
                       times(meta["end_s"]), meta["kind"])  # fmt: skip
        if path.suffix == ".npz":
            d = np.load(path)
            return cls(d["vectors"], list(d["paths"]), d["starts"], d["ends"], str(d["kind"]))
        if path.suffix == ".parquet":
            import ast

            import pyarrow.parquet as pq

            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            shape = ast.literal_eval(meta.get(b"shape", b"()").decode()) or (-1,)
            flat = np.asarray(table["embedding"].combine_chunks().flatten()).reshape(len(table), -1)
            return cls(flat.reshape(len(table), *shape), table["path"].to_pylist(),
                       np.asarray(table["start_s"]), np.asarray(table["end_s"]),
                       meta.get(b"kind", b"video").decode())  # fmt: skip
        raise ValueError(f"unknown embedding file type {path.suffix!r}: use .npy, .npz or .parquet")


def select(model, outputs: dict, kind: str) -> np.ndarray:
    """The `kind` of embedding out of `encode_video`'s outputs."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    features = outputs["spatiotemporal_features"]
    if kind == "features":
        return features
    if model.is_multimodal:
        return outputs["vision_embeddings" if kind == "video" else "frame_embeddings"]
    return features.mean(axis=(1, 2)) if kind == "video" else features.mean(axis=2)


def _whole_videos(videos, num_frames, size, batch_size, failures, on_error):
    """Whole videos, decoded in background threads while the model runs."""
    from ..video import VideoBatchLoader

    loader = VideoBatchLoader(videos, batch_size, num_frames, size, on_error=on_error)
    for batch in loader:
        for path, frames in zip(batch["paths"], batch["pixel_values"], strict=True):
            yield path, np.nan, np.nan, frames, True
    failures += loader.failures


def _clips(videos, num_frames, size, clip_seconds, stride_seconds, failures, on_error):
    from ..video import iter_clips
    from ..video.loader import describe_failure

    for source in videos:
        try:
            held = None  # one clip of look-ahead: the last one of a file is marked as such
            for clip in iter_clips(source, clip_seconds, stride_seconds, num_frames, size):
                if held is not None:
                    yield held
                held = str(source), clip.start, clip.end, clip.frames, False
            if held is not None:
                yield (*held[:4], True)
        except (ValueError, OSError) as err:
            if on_error == "raise":
                raise
            failures.append((str(source), describe_failure(err)))


def _without(items: Iterator, exclude, skipped: list) -> Iterator:
    for item in items:
        if exclude(*item[:3]):
            skipped[0] += 1
        else:
            yield item


def in_background(items: Iterator, ahead: int) -> Iterator:
    """Runs the `items` generator in a thread, at most `ahead` items ahead of the consumer,
    so that decoding (PyAV and PIL release the GIL) overlaps the model. Its errors are
    raised in the consumer; stopping early stops the thread."""
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
    """One embedded batch, as `embed_batches` yields it."""

    vectors: np.ndarray
    paths: list
    starts: list
    ends: list
    frames: np.ndarray  # the model's input, (B, T, H, W, 3) in [0, 1]
    last: list  # whether each item is its file's last clip (True for a whole video)


def embed_videos(model, videos, kind="video", batch_size=4, num_frames=None, size=None,
                 clip_seconds=None, stride_seconds=None, progress=True, on_error="raise",
                 encoder=None, exclude=None) -> Embeddings:  # fmt: skip
    """Embeds video files or arrays in batches.

    Args:
        model: a `VideoPrismBackbone`.
        videos: paths and/or (T, H, W, 3) arrays (uint8, or float in [0, 1]).
        kind: "video", "frames" or "features" (see the module docstring).
        num_frames, size: sampling; default the model's training frames and resolution.
        clip_seconds, stride_seconds: cut files (not arrays) into windows, one row each;
            the windows are decoded in a background thread while the model runs.
        on_error: "raise", or "skip" to record failures in `Embeddings.failures`.
        exclude: `item_key(path, start, end)`s to leave out without running the model
            (e.g. what an index already holds); `Embeddings.skipped` counts them.
    """
    failures: list = []
    skipped = [0]
    batches = embed_batches(model, videos, kind, batch_size, num_frames, size, clip_seconds,
                            stride_seconds, progress, on_error, encoder, exclude, failures,
                            skipped)  # fmt: skip
    vectors, paths, starts, ends = [], [], [], []
    for batch in batches:
        vectors.append(batch.vectors)
        paths += batch.paths
        starts += batch.starts
        ends += batch.ends
    if not vectors:
        if not skipped[0]:
            raise nothing_embedded(failures)
        vectors = [np.zeros((0, 0), np.float32)]  # everything was excluded
    return Embeddings(np.concatenate(vectors), paths, starts, ends, kind, failures, skipped[0])


def embed_batches(model, videos, kind="video", batch_size=4, num_frames=None, size=None,
                  clip_seconds=None, stride_seconds=None, progress=True, on_error="raise",
                  encoder=None, exclude=None, failures=None,
                  skipped=None) -> Iterator[Batch]:  # fmt: skip
    """`embed_videos` one batch at a time, for whoever writes them out as they come.

    `exclude` is a set of `item_key`s or a function `(path, start, end) -> bool`
    (called before the model runs; with clips, after the file is scanned); `failures`
    (a list) and `skipped` (a one-item list) are filled in as the batches go.
    """
    if isinstance(videos, str | os.PathLike):
        videos = [videos]
    videos = list(videos)
    if clip_seconds:
        arrays = [i for i, v in enumerate(videos) if not isinstance(v, str | os.PathLike)]
        if arrays:
            raise ValueError(
                f"clip_seconds cuts video files by their timestamps; videos[{arrays[0]}] is a "
                f"{type(videos[arrays[0]]).__name__}: embed arrays whole, or slice them first"
            )
    num_frames = num_frames or model.num_frames
    size = tuple(size or model.frame_shape[:2])
    if not callable(exclude):
        keys = set(exclude or ())
        exclude = lambda *item: item_key(*item) in keys  # noqa: E731
    failures = [] if failures is None else failures
    skipped = [0] if skipped is None else skipped
    if clip_seconds:
        items = _clips(videos, num_frames, size, clip_seconds, stride_seconds, failures, on_error)
        items = in_background(_without(items, exclude, skipped), ahead=2 * batch_size)
    else:
        done = lambda v: isinstance(v, str | os.PathLike) and exclude(v, None, None)  # noqa: E731
        kept = [v for v in videos if not done(v)]
        skipped[0] += len(videos) - len(kept)
        items = _whole_videos(kept, num_frames, size, batch_size, failures, on_error)
    encoder = encoder or Encoder(model)
    bar = progress_bar(progress, total=None if clip_seconds else len(kept))
    try:
        for batch in _batches(items, batch_size):
            frames = np.stack([b[3] for b in batch])
            outputs = encoder.video(frames)
            yield Batch(np.asarray(select(model, outputs, kind)), [b[0] for b in batch],
                        [b[1] for b in batch], [b[2] for b in batch], frames,
                        [b[4] for b in batch])  # fmt: skip
            bar.update(len(batch))
    finally:
        bar.close()


def progress_bar(enabled: bool, total: int | None):
    """A tqdm bar counting clips, or (disabled, or without tqdm) one that shows nothing;
    either has `update(n)` and `close()`."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        enabled = False
    if not enabled:

        class Silent:
            def update(self, n):
                pass

            def close(self):
                pass

        return Silent()
    return tqdm(total=total, unit="clip", desc="embedding")
