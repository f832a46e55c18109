"""`VideoIndex`: a searchable collection of video (clip) embeddings in a LanceDB table.

One row per clip of each video file (`store.py` has the table, `identity.py` how a file
and a clip are known). A `VideoIndex` is its `ClipTable` (`table.py`: opening, settings,
writes, facts) plus what people do with it: add videos (through `IndexWriter`,
`writer.py`), search, find moments (`moments.py`, `apps/timeline.py`, `apps/refine.py`),
save.

Vectors are L2-normalised, so the score is the cosine similarity. Search is exact (a
matrix product over the table's vectors, held in memory between searches: `snapshot.py`)
until the table reaches `ann_threshold` rows; then a LanceDB vector index is built
(`ann.py`), searched with a refine step (exact re-ranking of its candidates), and updated
as rows are added. With `in_memory=True` (the server) the vectors stay held past the
threshold too, and the re-ranking happens there instead of reading each candidate back
from the table; a new version's snapshot reads only the rows the previous one lacks.

    index = VideoIndex("my_index")                      # a folder (or s3://…): created
    index.add_videos(model, ["videos/"], clip_seconds=10)
    hits = index.search(query_embedding, top_k=5, under="videos/cats", per_video=True)
    moments = index.moments(query_embedding, top_k=5, model=model)  # start–end spans
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...constants import (
    ANN_THRESHOLD,
    COPY_MIN_SECONDS,
    COPY_NEIGHBOURS,
    COPY_THRESHOLD,
    MOMENT_RELATIVE,
    MOMENT_TOP_K,
)
from ...deprecation import renamed_attribute
from ...extras import require
from ..embedding import Embeddings, item_key
from ..timeline import Curve, Moment, check_relative, check_top_k
from . import ann, store
from .ann import ANN_REFINE_FACTOR
from .moments import Grouping, index_curves, index_moments
from .search import (
    SearchHit,
    approximate_search,
    exact_search,
    reranked_search,
    selected_rows,
    sql_predicate,
)
from .snapshot import Snapshot
from .table import ClipTable
from .writer import IndexWriter, VideoPaths, index_settings, write_embeddings, write_videos

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from ..copies import CopyGroup

# What the index is kept in: a LanceDB table, written and read as Arrow.
INDEX_PACKAGES = ("lancedb", "pyarrow")


class VideoIndex(ClipTable):
    """A video index at `uri`: a folder (created if need be) or any URI Lance takes.

    Args:
        uri: str, path or None. The index; None for a temporary one (deleted with the
            object; `save` it). Defaults to None.
        ann_threshold: int. Rows from which a vector index is built (see the module
            docstring). Defaults to `constants.ANN_THRESHOLD`.
        meta: dict or None. For a new index, what to record with it (the CLI: preset,
            soft cap); the settings of `add_videos` are added to it. Defaults to None.
        storage_options: dict or None. Passed to LanceDB for object stores
            (credentials, region…). Defaults to None.
        dim: int or None. Deprecated: the dimension comes from the first embeddings
            added. Defaults to None.
        in_memory: bool. Past `ann_threshold`, hold every clip's vector in memory (4
            bytes per dimension: 3 GB for a million 768-d clips) and re-rank the vector
            index's candidates there rather than reading them from the table: the
            fastest searches, for a process that searches many times (the server).
            Below the threshold the vectors are held in any case (exact search).
            Defaults to False.
        create: bool. Whether an index is created where `uri` holds none; False raises
            an error instead (as `load`). Defaults to True.
        refresh_seconds: float or None. How stale a read may be: other processes'
            commits are looked for at most every this many seconds (0: at every read).
            Defaults to None: `constants.INDEX_REFRESH_SECONDS` on an object store, every
            read in a local folder.
    """

    def __init__(self, uri: str | os.PathLike | None = None, *,
                 ann_threshold: int = ANN_THRESHOLD, meta: dict | None = None,
                 storage_options: dict | None = None, dim: int | None = None,
                 in_memory: bool = False, create: bool = True,
                 refresh_seconds: float | None = None) -> None:  # fmt: skip
        require(INDEX_PACKAGES, "VideoIndex", "the video index")
        if isinstance(uri, int):  # VideoIndex(dim): the previous signature
            warnings.warn("VideoIndex(dim) is deprecated: the dimension comes from the first "
                          "embeddings added; pass the index's location (or nothing)",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
            uri, dim = None, uri
        if uri is None and not create:
            raise ValueError("an existing index needs its location. Received: uri=None")
        if uri is None:
            uri = tempfile.mkdtemp(prefix="videoprism-index-")
            weakref.finalize(self, shutil.rmtree, uri, True)
        self.in_memory = in_memory
        self._snapshot = self._indexed = self._grouping = None
        super().__init__(uri, ann_threshold=ann_threshold, meta=meta,
                         storage_options=storage_options, dim=dim, create=create,
                         refresh_seconds=refresh_seconds)  # fmt: skip

    @classmethod
    def load(cls, uri: str | os.PathLike, ann_threshold: int = ANN_THRESHOLD,
             storage_options: dict | None = None, in_memory: bool = False, *,
             refresh_seconds: float | None = None) -> VideoIndex:  # fmt: skip
        """An existing index (an error if `uri` holds none); see `VideoIndex`."""
        return cls(uri, ann_threshold=ann_threshold, storage_options=storage_options,
                   in_memory=in_memory, create=False,
                   refresh_seconds=refresh_seconds)  # fmt: skip

    @classmethod
    def from_videos(cls, model: VideoPrismBackbone, sources: VideoPaths,
                    clip_seconds: float | None = None, stride_seconds: float | None = None,
                    ann_threshold: int = ANN_THRESHOLD, meta: dict | None = None,
                    uri: str | os.PathLike | None = None,
                    **options: Any) -> VideoIndex:  # fmt: skip
        """An index of video files and folders (see `add_videos`, whose arguments these
        are, and `VideoIndex`) at `uri` (None: a temporary one; `save` it)."""
        index = cls(uri, ann_threshold=ann_threshold, meta=meta)
        index.add_videos(model, sources, clip_seconds, stride_seconds, **options)
        return index

    # ----------------------------------------------------------- held rows
    def _rows(self, table=None) -> Snapshot | None:
        """The rows at the latest version, or at the version `table` (a Lance table from
        `latest()`) has checked out."""
        table = self.latest() if table is None else table
        if table is None:
            return None
        version = table.version
        if self._snapshot is None or self._snapshot.version != version:
            try:
                self._snapshot = Snapshot(table, version, previous=self._snapshot)
            except (OSError, RuntimeError, ValueError) as err:
                raise store.translate(err, self.uri, "reading it") from err
        return self._snapshot

    @property
    def paths(self) -> list[str]:
        """Every clip's path, at the latest version."""
        rows = self._rows()
        return [] if rows is None else list(rows.paths)

    @property
    def start_s(self) -> np.ndarray:
        """Every clip's start in seconds (NaN for a whole video), at the latest version."""
        rows = self._rows()
        return np.zeros(0) if rows is None else rows.start_s

    @property
    def end_s(self) -> np.ndarray:
        """Every clip's end in seconds (NaN for a whole video), at the latest version."""
        rows = self._rows()
        return np.zeros(0) if rows is None else rows.end_s

    starts = renamed_attribute("start_s")  # the names before `start_s`/`end_s`
    ends = renamed_attribute("end_s")

    @property
    def vectors(self) -> np.ndarray:
        """Every clip's vector, (N, D) float32, at the latest version."""
        rows = self._rows()
        return np.zeros((0, self.dim or 0), np.float32) if rows is None else rows.vectors

    def keys(self) -> set:
        """The `item_key(path, start_s, end_s)` of every clip."""
        rows = zip(self.paths, self.start_s, self.end_s, strict=True)
        return {item_key(*row) for row in rows}

    # -------------------------------------------------------------- adding
    def writer(self, model: VideoPrismBackbone | None = None, clip_seconds: float | None = None,
               stride_seconds: float | None = None, *, num_frames: int | None = None,
               size: int | Sequence[int] | None = None, shots: bool = False,
               encoder: Encoder | None = None) -> IndexWriter:  # fmt: skip
        """The way to write clips into this index (see `IndexWriter`), for clips that
        `model` embeds with this sampling; an error now if the index holds other settings.

        Args:
            model: `VideoPrismBackbone` or None. The model; None: no settings are checked
                or recorded (only the dimension). Defaults to None.
            clip_seconds: float or None. Windows of long videos, in seconds; None for
                whole videos. Defaults to None.
            stride_seconds: float or None. The windows' stride. Defaults to None
                (`clip_seconds`).
            num_frames: int or None. Frames per clip. Defaults to None (the model's).
            size: int, (height, width) or None. Frame size. Defaults to None (the
                model's).
            shots: bool. Windows at shot cuts (see `add_videos`). Defaults to False.
            encoder: `Encoder` or None. What runs the model (its engine and precision are
                recorded). Defaults to None (Keras, in the model's dtype).
        """
        settings = {} if model is None else index_settings(model, clip_seconds, stride_seconds,
                                                           num_frames, size, shots,
                                                           encoder)  # fmt: skip
        return IndexWriter(self, settings)

    def add(self, embeddings: Embeddings, posters: Sequence[bytes] | None = None) -> VideoIndex:
        """Adds (N, D) video embeddings with their paths and clip times, in one commit.

        Paths that name files are stored as their real path, with the file's identity;
        rows of an earlier version of a file (same path, other size or mtime) are removed.

        Args:
            embeddings: `Embeddings`. Vectors, paths and clip times.
            posters: sequence of bytes or None. A JPEG poster per clip. Defaults to None.

        Returns:
            This index.
        """
        write_embeddings(self, embeddings, posters)
        return self

    def add_videos(self, model: VideoPrismBackbone, sources: VideoPaths,
                   clip_seconds: float | None = None, stride_seconds: float | None = None,
                   skip_existing: bool = True, *, shots: bool = False,
                   **options: Any) -> Embeddings:  # fmt: skip
        """Embeds video files and folders (walked recursively) and adds them, committing
        each batch as it is done (an interrupted run keeps what it did; the next one
        does the rest, without running the model on anything the index holds).

        Args:
            model: `VideoPrismBackbone`. The model whose embedding space the index holds.
            sources: path or sequence of paths. Video files and/or folders; files are
                stored by their real path.
            clip_seconds: float or None. Index windows of long videos (with times); None
                for whole videos. Defaults to None.
            stride_seconds: float or None. The windows' stride. Defaults to None
                (`clip_seconds`).
            skip_existing: bool. Leave out (without decoding a finished file, or running
                the model on a clip) what the index holds. Defaults to True.
            shots: bool. Windows at the videos' shot cuts (PySceneDetect: the `shots`
                extra), long shots split into equal parts of at most `clip_seconds`
                (needed), in place of the stride's (no `stride_seconds`: a `ValueError`);
                recorded in the index, which is then extended with shots only. Defaults
                to False.
            **options: `embed_videos` options (batch_size, num_frames, size, progress,
                on_error, encoder).

        Returns:
            The `Embeddings` added, as a record: paths and clip times (the vectors are in
            the index, so `vectors` is (N, 0)); `skipped` counts the clips the index
            already held, `failures` the sources that could not be embedded (dangling or
            looping symlinks and folders named like videos are always failures, not
            errors).
        """
        sources = _checked_sources(sources)
        return write_videos(self, model, sources, clip_seconds, stride_seconds, skip_existing,
                            shots=shots, **options)  # fmt: skip

    def save(self, directory: str | os.PathLike) -> Path:
        """Copies the index to `directory` (a new index there); every write is already
        committed, so saving an index to its own location does nothing.

        Args:
            directory: str or path. Where the copy goes: a new folder.

        Returns:
            The copy's folder.
        """
        target = os.fspath(directory)
        if os.path.abspath(target) == os.path.abspath(self.uri):
            return Path(target)
        copy = VideoIndex(target, ann_threshold=self.ann_threshold, meta=self.meta)
        if len(copy):
            raise ValueError(f"{target} already holds an index: save to a new folder")
        if self.version is not None:
            copy.commit(self.to_arrow())
            copy.maintain()
        else:
            Path(target).mkdir(parents=True, exist_ok=True)
        return Path(target)

    # ------------------------------------------------------------- moments
    def curves(self, query: ArrayLike, *, where: str | None = None,
               under: str | os.PathLike | None = None,
               paths: Iterable[str | os.PathLike] | None = None) -> list[Curve]:  # fmt: skip
        """The query's similarity curve over each video's windows, from the held vectors.

        A window's score is the cosine similarity after centring the window and the
        query on the index's mean embedding: embeddings of unrelated content share a
        large common direction, which would press every curve towards 1 (see
        `apps/index/moments.py`).

        Args:
            query: (D,) array. A query embedding (normalised here).
            where: str or None. A SQL predicate over the clips' columns, as in `search`.
                Defaults to None.
            under: path or None. Only videos in this folder (or its sub-folders).
                Defaults to None.
            paths: iterable of paths or None. Only these videos. Defaults to None (all).

        Returns:
            list of `timeline.Curve`, one per video, by path.

        Raises:
            ValueError: if the index is empty, holds whole videos (no windows), or the
                query is not a finite, non-zero (D,) embedding of the index's size.
        """
        rows, grouping, query, chosen = self._moment_inputs(query, where, under, self.meta)
        return index_curves(rows, grouping, query, chosen, paths, self.uri)

    def moments(self, query: ArrayLike, top_k: int = MOMENT_TOP_K, *, where: str | None = None,
                under: str | os.PathLike | None = None, model: VideoPrismBackbone | None = None,
                shots: bool = False, relative: float = MOMENT_RELATIVE,
                batch_size: int = 8, encoder: Encoder | None = None) -> list[Moment]:  # fmt: skip
        """Where in the indexed videos the query happens: start–end moments, best first.

        Each video's windows form a similarity curve (`curves`); its peaks are grown
        into spans over the windows above half height (`timeline.moments_of`, the
        baseline being the median over every selected window): the coarse moments, as
        fine as the index's stride, scored by their peak. All held vectors are read
        once per call (one matrix-vector product), and only the `top_k` best videos'
        curves are grown. With `model` (the index's), each is refined:
        around its edges the video is embedded again at a finer stride (decoding only
        those seconds), the edges move to where the fine curve crosses the threshold,
        and the moments are scored again as whole spans and re-ranked (`refine.refine`).

        Args:
            query: (D,) array. A query embedding (normalised here): a text's, an image's
                or a video's, from the index's model.
            top_k: int. Moments returned, at most; at least 1. Defaults to
                `MOMENT_TOP_K`.
            where: str or None. A SQL predicate over the clips' columns, as in `search`.
                Defaults to None.
            under: path or None. Only videos in this folder (or its sub-folders).
                Defaults to None.
            model: `VideoPrismBackbone` or None. The index's model, to refine; None for
                the coarse moments only. Defaults to None.
            shots: bool. With `model`, move each edge to a shot cut near it
                (`video.shots.shot_cuts`). Defaults to False.
            relative: float. The span's threshold between the baseline (0) and the
                peak (1). Defaults to `MOMENT_RELATIVE` (half height).
            batch_size: int. Clips per model call when refining. Defaults to 8.
            encoder: `Encoder` or None. What runs `model` when refining (its engine and
                precision are checked against the index's). Defaults to None (Keras, in
                the model's dtype).

        Returns:
            list of `timeline.Moment`, best first (empty when no window stands out).

        Raises:
            ValueError: if `top_k` is below 1, the index is empty or holds whole videos
                (rebuild it with clip_seconds), the query is not a finite, non-zero (D,)
                embedding of the index's size, or `shots` is asked without `model`.
        """
        top_k = check_top_k(top_k)
        relative = check_relative(relative)
        if shots and model is None:
            raise ValueError("shots=True snaps refined edges to shot cuts: pass the index's "
                             "model too (model=...)")  # fmt: skip
        settings = self.meta
        if model is not None and "num_frames" not in settings:
            raise ValueError(f"the index {self.uri} records no sampling (it was filled with "
                             "embeddings, not videos), so its moments cannot be refined: "
                             "call moments without model")  # fmt: skip
        if model is not None:
            self.check_settings(index_settings(model, settings.get("clip_seconds"),
                                               settings.get("stride_seconds"),
                                               settings.get("num_frames"),
                                               settings.get("size"),
                                               bool(settings.get("shots")),
                                               encoder))  # fmt: skip
        rows, grouping, query, chosen = self._moment_inputs(query, where, under, settings)
        found = index_moments(rows, grouping, query, top_k, relative, chosen, self.uri)
        if model is None or not found:
            return found
        from ..refine import refine  # Keras only here

        return refine(model, found, query, clip_seconds=settings["clip_seconds"],
                      stride_seconds=settings["stride_seconds"],
                      num_frames=settings["num_frames"], size=settings["size"], shots=shots,
                      relative=relative, batch_size=batch_size, encoder=encoder)  # fmt: skip

    def _moment_inputs(self, query, where, under, settings: dict):
        """What `curves` and `moments` work on: the held rows, grouped by video, the
        checked query, and the rows `where`/`under` keep (None: all)."""
        table = self._checked_latest()
        query = self._checked_queries(query, "query", single=True)[0]
        if settings.get("clip_seconds") is None and "num_frames" in settings:
            raise ValueError(f"the index {self.uri} holds whole videos (it was built without "
                             "clip_seconds), and a moment needs windows: rebuild it with "
                             "clip_seconds (`videoprism index --clip-seconds`)")  # fmt: skip
        rows = self._rows(table)
        if self._grouping is None or self._grouping.version != rows.version:
            self._grouping = Grouping(rows)
        predicate = sql_predicate(where, under)
        chosen = None if predicate is None else selected_rows(table, rows, predicate)
        return rows, self._grouping, query, chosen

    def _checked_latest(self):
        """The latest table version; an error when the index holds nothing."""
        table = self.latest()
        if table is None:
            raise ValueError(f"the index {self.uri} is empty: add videos to it first")
        return table

    def _checked_queries(self, queries, name: str, single: bool = False) -> np.ndarray:
        """`queries` as normalised (Q, D) float32, checked: finite, non-zero, the index's
        dimension (and one query when `single`)."""
        queries = np.asarray(queries, dtype=np.float32)
        if single and not (queries.ndim == 1 or (queries.ndim == 2 and len(queries) == 1)):
            raise ValueError(f"{name} must be one (D,) embedding. Received: an array of shape "
                             f"{queries.shape}")  # fmt: skip
        queries = np.atleast_2d(queries)
        # NaN scores every clip nan, and a zero vector every clip 0: hits ranked by nothing.
        bad = ~np.isfinite(queries).all(axis=1) | ~(queries != 0).any(axis=1)
        if bad.any():
            where_ = "" if single else f"[{int(np.flatnonzero(bad)[0])}]"
            raise ValueError(f"{name}{where_} is all zeros or holds NaN or inf: a query must "
                             "be a finite, non-zero embedding")  # fmt: skip
        queries = store.normalise(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"the {name} {'is' if single else 'are'} {queries.shape[1]}-d, the "
                             f"index {self.uri} holds {self.dim}-d embeddings: embed "
                             f"{'it' if single else 'them'} with the index's preset")  # fmt: skip
        return queries

    # -------------------------------------------------------------- search
    def search(self, queries: ArrayLike, top_k: int = 5, *, where: str | None = None,
               under: str | os.PathLike | None = None, per_video: bool = False,
               exact: bool | None = None, nprobes: int | None = None,
               refine_factor: int = ANN_REFINE_FACTOR) -> list[list[SearchHit]]:  # fmt: skip
        """Query embeddings → per query, the `top_k` hits, best first.

        Args:
            queries: (Q, D) or (D,) array. Query embeddings (normalised here).
            top_k: int. Hits per query. Defaults to 5.
            where: str or None. A SQL predicate over the columns path, start_s, end_s,
                duration_s, size_bytes (e.g. "duration_s > 60 AND start_s < 30").
                Defaults to None.
            under: path or None. Only videos in this folder (or its sub-folders).
                Defaults to None.
            per_video: bool. The best clip of each video: top-k videos, not clips.
                Defaults to False.
            exact: bool or None. True for exact search whatever the size; None: exact
                until the table has a vector index (past `ann_threshold` rows). Defaults
                to None.
            nprobes: int or None. Lists of the vector index searched. Defaults to None:
                `ann.ANN_PROBED_SHARE` of them (65%, rounded up).
            refine_factor: int. Candidates of the vector index re-ranked exactly, as a
                multiple of `top_k`. Defaults to `ann.ANN_REFINE_FACTOR` (30).
        """
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k}")
        table = self._checked_latest()
        queries = self._checked_queries(queries, "queries")
        predicate = sql_predicate(where, under)
        if self._indexed is None or self._indexed[0] != table.version:
            self._indexed = (table.version, ann.find(table) is not None, table.count_rows())
        if exact or (exact is None and not self._indexed[1]):
            rows = self._rows(table)  # the version just checked out
            if not len(rows):
                raise ValueError(f"the index {self.uri} is empty: add videos to it first")
            return exact_search(table, rows, queries, top_k, predicate, per_video)
        if nprobes is None:
            nprobes = ann.default_nprobes(self._indexed[2])
        if self.in_memory:
            rows = self._rows(table)
            return [reranked_search(table, rows, q, top_k, predicate, per_video, nprobes,
                                    refine_factor) for q in queries]  # fmt: skip
        return [approximate_search(table, q, top_k, predicate, per_video, nprobes,
                                   refine_factor) for q in queries]  # fmt: skip

    # -------------------------------------------------------------- copies
    def copies(self, *, threshold: float = COPY_THRESHOLD,
               min_seconds: float = COPY_MIN_SECONDS, neighbours: int = COPY_NEIGHBOURS,
               path: str | os.PathLike | None = None, ray: str | bool | None = None,
               exact: bool | None = None) -> list[CopyGroup]:  # fmt: skip
        """Which videos (or parts) are copies of which, with the shared spans and the
        time offset, grouped: a video and all its copies (`apps/copies.py`).

        Args:
            threshold: float in (0, 1]. The least similarity of two matched windows, after
                centring the vectors on the index's mean. Defaults to
                `constants.COPY_THRESHOLD`.
            min_seconds: float. The least length of a copy. Defaults to
                `constants.COPY_MIN_SECONDS`.
            neighbours: int. Matches kept per window: its nearest windows in other videos.
                Defaults to `constants.COPY_NEIGHBOURS`.
            path: str, path or None. Only the copies involving this video. Defaults to
                None (all).
            ray: str, bool or None. Run on Ray: True or "local" (this process's session,
                else a new local instance) or a cluster's address. Defaults to None.
            exact: bool or None. True: exact neighbours whatever the size; None: through
                the vector index once the table has one. Defaults to None.

        Returns:
            A list of `CopyGroup` (`paths`, `copies`: each a `Copy` of spans `a` and `b`,
            `offset_s`, `score`), the most videos first; with `path`, at most one.
        """
        from ..copies import check_copy_options, find_copies, find_path

        check_copy_options(threshold, min_seconds, neighbours)
        table = self.latest()
        rows = None if table is None else self._rows(table)
        if rows is None or not len(rows):
            if path is not None:
                raise ValueError(f"path {os.fspath(path)!r} is not in the index: it is empty")
            return []
        if path is not None:
            path = find_path(rows, path)
        search = None
        if not exact and ann.find(table) is not None:
            search = {"uri": self.uri, "storage_options": self.storage_options,
                      "version": table.version, "lists": ann.partitions(len(rows))}  # fmt: skip
        stride = self.meta.get("stride_seconds")
        return find_copies(rows, stride=stride, threshold=threshold, min_seconds=min_seconds,
                           neighbours=neighbours, path=path, ann=search, ray=ray)  # fmt: skip


def _checked_sources(sources: Any) -> VideoPaths:
    """`add_videos`' `sources`, refused in its own name when it holds no paths (arguments
    swapped or a number given: Python would only say "'int' object is not iterable")."""
    if isinstance(sources, str | os.PathLike):
        return sources
    items = list(sources) if isinstance(sources, Iterable) else None
    if items is None or not all(isinstance(item, str | os.PathLike) for item in items):
        raise TypeError("sources must be a video file or folder, or a sequence of them "
                        f"(str or path). Received: sources={sources!r}")  # fmt: skip
    if not items:
        raise ValueError("sources is empty: give the video files or folders to add. "
                         f"Received: sources={sources!r}")  # fmt: skip
    return items
