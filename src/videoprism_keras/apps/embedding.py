"""Videos (files or arrays) → embeddings with their file names and clip times.

    kind="video"     (N, D)        LvT: the pooled, L2-normalised video embedding;
                                   video-only models: the mean of the features
    kind="frames"    (N, T, D)     LvT: the pooler applied to each frame (normalised);
                                   video-only models: the mean over each frame's patches
    kind="features"  (N, T, P, D)  the spatiotemporal features

With `clip_seconds`, every video is cut into windows (one row per window), so a
long video becomes a series of embeddings with timestamps.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime import Encoder

KINDS = ("video", "frames", "features")


@dataclass
class Embeddings:
    vectors: np.ndarray
    paths: list = field(default_factory=list)
    starts: np.ndarray = None  # seconds; NaN for a whole video
    ends: np.ndarray = None
    kind: str = "video"
    failures: list = field(default_factory=list)  # (path, error) of skipped inputs

    def __post_init__(self):
        n = len(self.vectors)
        self.starts = np.full(n, np.nan) if self.starts is None else np.asarray(self.starts, float)
        self.ends = np.full(n, np.nan) if self.ends is None else np.asarray(self.ends, float)

    def __len__(self):
        return len(self.vectors)

    def save(self, path) -> Path:
        """`.npy` (vectors only), `.npz` (vectors, paths, starts, ends) or `.parquet`."""
        path = Path(path)
        if path.suffix == ".npy":
            np.save(path, self.vectors)
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
            return cls(np.load(path))
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
    """Batches of whole videos, decoded in background threads while the model runs."""
    from ..video import VideoBatchLoader

    loader = VideoBatchLoader(videos, batch_size, num_frames, size, on_error=on_error)
    for batch in loader:
        for path, frames in zip(batch["paths"], batch["pixel_values"], strict=True):
            yield path, np.nan, np.nan, frames
    failures += loader.failures


def _clips(videos, num_frames, size, clip_seconds, stride_seconds, failures, on_error):
    from ..video import iter_clips

    for source in videos:
        try:
            for clip in iter_clips(source, clip_seconds, stride_seconds, num_frames, size):
                yield str(source), clip.start, clip.end, clip.frames
        except (ValueError, OSError) as err:
            if on_error == "raise":
                raise
            failures.append((str(source), f"{type(err).__name__}: {err}"))


def _batches(items: Iterator, batch_size: int) -> Iterable[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_videos(model, videos, kind="video", batch_size=4, num_frames=None, size=None,
                 clip_seconds=None, stride_seconds=None, progress=True, on_error="raise",
                 encoder=None) -> Embeddings:  # fmt: skip
    """Embeds video files or arrays in batches.

    Args:
        model: a `VideoPrismBackbone`.
        videos: paths and/or (T, H, W, 3) arrays (uint8, or float in [0, 1]).
        kind: "video", "frames" or "features" (see the module docstring).
        num_frames, size: sampling; default the model's training frames and resolution.
        clip_seconds, stride_seconds: cut files into windows (one row each).
        on_error: "raise", or "skip" to record failures in `Embeddings.failures`.
    """
    num_frames = num_frames or model.num_frames
    size = tuple(size or model.image_shape[:2])
    encoder = encoder or Encoder(model)
    failures: list = []
    if clip_seconds:
        items = _clips(videos, num_frames, size, clip_seconds, stride_seconds, failures, on_error)
    else:
        items = _whole_videos(videos, num_frames, size, batch_size, failures, on_error)
    bar = _progress(progress, total=None if clip_seconds else len(videos))
    vectors, paths, starts, ends = [], [], [], []
    for batch in _batches(items, batch_size):
        outputs = encoder.video(np.stack([b[3] for b in batch]))
        vectors.append(select(model, outputs, kind))
        paths += [b[0] for b in batch]
        starts += [b[1] for b in batch]
        ends += [b[2] for b in batch]
        bar.update(len(batch))
    bar.close()
    if not vectors:
        raise ValueError(f"no video could be embedded; failures: {failures}")
    return Embeddings(np.concatenate(vectors), paths, starts, ends, kind, failures)


def _progress(enabled, total):
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
