"""The write protocol of a video index: `IndexWriter`, the one way clips go in, shared by
`VideoIndex.add`/`add_videos` (`write_embeddings`, `write_videos`, here) and the Ray
pipeline's driver.

Every embedded batch is committed as it is done, so an interrupted `add_videos` keeps
what it did and a later one does the rest, without running the model on anything the
index holds. The writer uses the index only through the public methods of its
`ClipTable` (`table.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...constants import MAINTAIN_EVERY_COMMITS
from ...deprecation import renamed_arguments
from ...video.images import poster_jpeg
from ...video.options import Sampling
from ..embedding import Embeddings, check_shot_windows, embed_batches, item_key, nothing_embedded
from ..identity import VideoFile, video_files
from . import fingerprint, store
from .table import ClipTable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder

VideoPaths = str | os.PathLike | Sequence[str | os.PathLike]  # video files and folders


class IndexWriter:
    """Writes clips into a `VideoIndex` (get one with `VideoIndex.writer`), keeping the
    index's invariants:

    - the settings (preset, sampling, dimension) are those the index holds, checked
      before any work (here) and at each commit (the dimension);
    - `prepare` tells what the index holds of the files to write, and removes the rows
      of earlier versions of them (same path, other size or mtime) first;
    - `commit` stores a batch of clips in one Lance commit: a merge on the clip's `id`
      under the index's lock, so a clip embedded twice is stored once;
    - a file's `last_clip` is set when the file is whole (`commit`'s `last`, or later
      `mark_complete`): a later run skips a file only when it is;
    - inputs that could not be embedded are kept in the failures table
      (`record_failures`, `forget_failures`);
    - every `MAINTAIN_EVERY_COMMITS` commits the table's maintenance runs if it is due
      (compaction, old versions, the vector index: `ClipTable.maintain`), so that a long
      run of small commits keeps the table's fragments and versions bounded; `finish`
      runs it once the writes are done (and after a long run merges every small
      fragment: the table is left as a freshly built one).

    Args:
        index: `VideoIndex` (or its `ClipTable`). The index written to.
        settings: dict. The model's preset and sampling (see `index_settings`), recorded
            with a new index, checked against an existing one; {} for none.
    """

    def __init__(self, index: ClipTable, settings: dict) -> None:
        index.check_settings(settings)
        self.index, self.settings = index, settings
        self._commits = self._run = 0  # since the last look at maintenance; in all
        self._durations: dict = {}  # file_id → the video's duration: probed once per file

    def held(self, files: Sequence[VideoFile]) -> dict[str, tuple[set, bool]]:
        """file_id → (item keys of the clips the index holds, whether the file is whole)."""
        return self.index.held(files)

    def prepare(self, files: Sequence[VideoFile],
                skip_existing: bool = True) -> tuple[dict, list[VideoFile]]:  # fmt: skip
        """What to write of `files`; the rows of earlier versions of them go now.

        Args:
            files: sequence of `VideoFile`. The files about to be written.
            skip_existing: bool. Whether what the index holds is left out. Defaults to True.

        Returns:
            (`held` of the files, or {} with `skip_existing` False; the files not whole,
            to be written).
        """
        held = self.held(files) if skip_existing else {}
        todo = [f for f in files if not held.get(f.file_id, (set(), False))[1]]
        for stale in _stale(todo):
            self.index.commit(delete=stale)
        return held, todo

    @renamed_arguments(starts="start_s", ends="end_s", durations="duration_s")
    def commit(self, files: Sequence[VideoFile], start_s: Sequence[float | None],
               end_s: Sequence[float | None], vectors: ArrayLike, last: Sequence[bool],
               posters: Sequence[bytes | None] | None = None,
               duration_s: Sequence[float | None] | None = None) -> None:  # fmt: skip
        """Stores clips, one per row, in one commit.

        Args:
            files: sequence of `VideoFile`. Each clip's file.
            start_s, end_s: sequences of float. Clip times in seconds (None or NaN for a
                whole video).
            vectors: (N, D) array. The embeddings (normalised here).
            last: sequence of bool. Whether each clip is its file's last; set only once
                the file is whole.
            posters: sequence of bytes or None. JPEG posters. Defaults to None.
            duration_s: sequence of float or None. The videos' durations in seconds (None
                or NaN for unknown). Defaults to None (probed once per file).
        """
        vectors = store.normalise(vectors)
        if duration_s is None:
            duration_s = [self._duration(f) for f in files]
        rows = store.clip_table(files, start_s, end_s, vectors, last, posters, duration_s)
        self.index.commit(rows, settings=self.settings)
        self._committed()

    def mark_complete(self, ids: Sequence[str]) -> None:
        """Sets `last_clip` on these clip ids (files whose last clip was committed before
        the file was whole)."""
        self.index.mark_last_clips(ids)
        self._committed()

    def record_failures(self, failures: Sequence[tuple[str, str]]) -> None:
        """(path, reason) of inputs that could not be embedded, into the failures table."""
        self.index.record_failures(failures)

    def forget_failures(self, paths: Sequence[str]) -> None:
        """Paths now whole in the index are no longer failures."""
        self.index.forget_failures(paths)

    def finish(self) -> None:
        """Once the writes are done: the table's maintenance (see `ClipTable.maintain`);
        after a long run of commits (`MAINTAIN_EVERY_COMMITS` or more), its small
        fragments merged whatever their number."""
        self.index.maintain(compact=self._run >= MAINTAIN_EVERY_COMMITS)

    def _committed(self):
        self._commits, self._run = self._commits + 1, self._run + 1
        if self._commits >= MAINTAIN_EVERY_COMMITS:
            self._commits = 0
            self.index.maintain(finishing=False)

    def _duration(self, file):
        if file.file_id not in self._durations:  # once per file (version), not per clip
            if len(self._durations) > 1024:
                self._durations.clear()
            self._durations[file.file_id] = _duration(file.path) if file.size >= 0 else None
        return self._durations[file.file_id]


def index_settings(model: VideoPrismBackbone, clip_seconds: float | None = None,
                   stride_seconds: float | None = None, num_frames: int | None = None,
                   size: int | Sequence[int] | None = None, shots: bool = False,
                   encoder: Encoder | None = None) -> dict:  # fmt: skip
    """The settings an index records and checks for clips `model` embeds with this
    sampling: frames, size, clip and stride seconds, whether windows follow shots, dtype
    and engine (and the backbone's configuration and the hash of its weights:
    `fingerprint.py`).

    Args:
        model: `VideoPrismBackbone`. The model.
        clip_seconds: float or None. Windows of long videos, in seconds; None for
            whole videos. Defaults to None.
        stride_seconds: float or None. The windows' stride. Defaults to None
            (`clip_seconds`).
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the
            model's).
        shots: bool. Windows at shot cuts, of at most `clip_seconds`, with no
            `stride_seconds` (`add_videos` refuses one): the stride is recorded as
            `clip_seconds`, windows not overlapping. Defaults to False.
        encoder: `Encoder` or None. What runs the model: its engine and precision are
            recorded. Defaults to None (Keras, in the model's own dtype).
    """
    sampling = Sampling.for_model(model, num_frames, size)
    height, width = sampling.size
    return {
        "num_frames": sampling.num_frames,
        "size": height if height == width else [height, width],
        "clip_seconds": float(clip_seconds) if clip_seconds else None,
        "stride_seconds": float(stride_seconds or clip_seconds) if clip_seconds else None,
        "shots": bool(shots),
        "dtype": recorded_dtype(model, encoder),
        "engine": getattr(encoder, "engine", None) or "keras",
        fingerprint.CONFIG_KEY: _backbone_config(model),
        fingerprint.WEIGHTS_KEY: fingerprint.weights_sha256(model),
    }


def recorded_dtype(model: VideoPrismBackbone, encoder: Encoder | None = None) -> str:
    """The dtype an index records, as --dtype names it: the precision an engine other than
    Keras runs; on Keras, "int8" for a quantized model, else its dtype policy's name."""
    engine = getattr(encoder, "engine", None) or "keras"
    if engine != "keras":
        return str(encoder.precision)
    if any(str(w.dtype) == "int8" for w in getattr(model, "weights", ())):  # quantize()'s
        return "int8"
    return getattr(getattr(model, "dtype_policy", None), "name", "float32")


def write_embeddings(index: ClipTable, embeddings: Embeddings,
                     posters: Sequence[bytes | None] | None = None) -> None:  # fmt: skip
    """`VideoIndex.add`: embeddings in one commit, then the table's maintenance."""
    if len(embeddings) == 0:
        return
    vectors = store.normalise(embeddings.vectors)
    if vectors.ndim != 2:
        raise ValueError(f"an index holds (N, D) video embeddings. Received: an array of "
                         f"shape {vectors.shape}")  # fmt: skip
    index.check_settings({}, vectors.shape[1])
    files = {p: store.identity_of(p) for p in map(str, embeddings.paths)}
    durations = {p: _duration(f.path) if f.size >= 0 else None for p, f in files.items()}
    paths = list(map(str, embeddings.paths))
    rows = store.clip_table([files[p] for p in paths], embeddings.start_s, embeddings.end_s,
                            vectors, [True] * len(vectors), posters,
                            [durations[p] for p in paths])  # fmt: skip
    stale = _stale(list(files.values()))
    for predicate in stale[:-1]:
        index.commit(delete=predicate)
    index.commit(rows, delete=stale[-1] if stale else None, settings={})
    index.maintain()


def write_videos(index: ClipTable, model: VideoPrismBackbone, sources: VideoPaths,
                 clip_seconds: float | None = None, stride_seconds: float | None = None,
                 skip_existing: bool = True, **options: Any) -> Embeddings:  # fmt: skip
    """`VideoIndex.add_videos` (see there)."""
    check_shot_windows(options.get("shots", False), clip_seconds, stride_seconds)
    files, failures = video_files(sources)
    settings = index_settings(model, clip_seconds, stride_seconds, options.get("num_frames"),
                              options.get("size"), options.get("shots", False),
                              options.get("encoder"))  # fmt: skip
    writer = IndexWriter(index, settings)
    held, todo = writer.prepare(files, skip_existing)
    by_path = {f.path: f for f in files}
    whole = sum(len(keys) for keys, whole in held.values() if whole)
    todo = [f.path for f in todo]
    reader = _HeldClips(index, by_path, held) if skip_existing else (lambda *item: False)
    paths, start_s, end_s = [], [], []
    stream = embed_batches(model, todo, kind="video", clip_seconds=clip_seconds,
                           stride_seconds=stride_seconds, exclude=reader,
                           **{k: v for k, v in options.items() if k != "kind"})  # fmt: skip
    for batch in stream:
        posters = [poster_jpeg(f) for f in batch.frames]
        writer.commit([by_path[p] for p in batch.paths], batch.start_s, batch.end_s,
                      batch.vectors, batch.last, posters)  # fmt: skip
        paths += batch.paths
        start_s += batch.start_s
        end_s += batch.end_s
    failures += stream.failures
    skipped = whole + stream.skipped
    if not paths and not skipped and todo:
        raise nothing_embedded(failures)
    writer.finish()
    return Embeddings(np.zeros((len(paths), 0), np.float32), paths, start_s, end_s,
                      failures=failures, skipped=skipped)  # fmt: skip


class _HeldClips:
    """`embed_batches(exclude=…)` for an index: whether the index holds a clip. A file's
    clips are looked up again when its first clip comes, so that a file another process
    indexed meanwhile is not embedded twice."""

    def __init__(self, index, by_path, held):
        self.index, self.by_path, self.held = index, by_path, held
        self.current = self.reader = None

    def __call__(self, path, start_s, end_s) -> bool:
        file = self.by_path.get(str(path))
        if file is None:
            return False
        if self.current != file.file_id and self.index.version is not None:
            self.current = file.file_id
            # A handle of its own: this runs on the decoding thread (the main one commits).
            self.reader = self.reader or self.index.reader()
            self.held.update(self.reader.held([file]))
        held = self.held.get(file.file_id, (set(), False))[0]
        return item_key(file.path, start_s, end_s) in held


def _backbone_config(model) -> dict | None:
    """The model's configuration, as JSON keeps it (compared where it shapes the
    embeddings: `fingerprint.model_difference`)."""
    try:
        return json.loads(json.dumps(model.get_config(), default=str))
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _stale(files) -> list[str]:
    """SQL for the rows of earlier versions of these files (same path, other identity),
    a few hundred files per predicate."""
    terms = [f"(path = {store.sql_string(f.path)} AND file_id != {store.sql_string(f.file_id)})"
             for f in files if f.size >= 0]  # fmt: skip
    batch = store.ID_BATCH
    return [" OR ".join(terms[i : i + batch]) for i in range(0, len(terms), batch)]


def _duration(path) -> float | None:
    from ...video import probe

    try:
        return float(probe(path, exact=False).duration_s) or None
    except (OSError, ValueError):
        return None
