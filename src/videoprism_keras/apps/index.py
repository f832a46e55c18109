"""A searchable collection of video (clip) embeddings, kept in a LanceDB table.

One row per clip of each video file (see `index_store.py` for the table, `identity.py`
for how a file and a clip are known). Every embedded batch is committed as it is done,
so an interrupted `add_videos` keeps what it did and a later one does the rest, without
running the model on anything the table holds. The model's preset and the sampling
(frames, size, clip and stride seconds, dtype) are in the table's metadata: adding with
other settings is refused.

Vectors are L2-normalised, so the score is the cosine similarity. Search is exact (a
matrix product over the table's vectors, held in memory between searches) until the
table reaches `ann_threshold` rows; then a LanceDB vector index is built, searched with
a refine step (exact re-ranking of its candidates), and updated as rows are added. With
`in_memory=True` (the server) the vectors stay held past the threshold too, and the
re-ranking happens there instead of reading each candidate back from the table; a new
version's snapshot reads only the rows the previous one lacks.
Figures and the choice of index: benchmarks/README.md, "Video index".

    index = VideoIndex("my_index")                      # a folder (or s3://…): created
    index.add_videos(model, ["videos/"], clip_seconds=10)
    hits = index.search(query_embedding, top_k=5, under="videos/cats", per_video=True)

Every writer of clips (`add_videos` in this process, the Ray pipeline's driver) goes
through `IndexWriter` (`index.writer(...)`), which keeps the invariants in one place.
"""

import io
import logging
import math
import os
import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from . import index_store as store
from .embedding import Embeddings, embed_batches, item_key, nothing_embedded
from .identity import VideoFile, clip_id, identify, video_files

log = logging.getLogger(__name__)

# The size from which a vector index is built, and its parameters: chosen with
# benchmarks/index_search.py (see benchmarks/README.md).
ANN_THRESHOLD = 200_000
# IVF-RQ (RaBitQ: one bit per dimension, 96 bytes a 768-d vector): at 1M rows it reached a
# higher recall than IVF-PQ at a lower latency, and builds 3x faster.
# Few long lists, most of them probed: on the benchmark's vectors (spread over a 64-d
# sphere, the hard case) recall follows the share of rows scanned whatever the lists, and
# each list probed costs Lance a fixed overhead, so √N/4 lists beat √N.
ANN_PARTITIONS_PER_SQRT_ROW = 0.25  # IVF lists: √N / 4
ANN_MIN_PARTITIONS, ANN_MIN_LIST_ROWS = 256, 500
ANN_ITERATIONS = 20  # k-means iterations: more buy no recall, only build time
ANN_SAMPLE_RATE = 64  # k-means sample: rows per list
ANN_PROBED_SHARE = 0.65  # lists searched per query, as a share of the lists
ANN_REFINE_FACTOR = 30  # candidates re-ranked exactly: top_k × this
# Compaction and index updates leave the replaced files for readers of older versions;
# they are deleted this long after (Lance's default, 7 days, would double the disk used).
KEEP_OLD_VERSIONS = timedelta(hours=1)
POSTER_SIDE = 128  # pixels, the long side
SETTINGS = ("num_frames", "size", "clip_seconds", "stride_seconds", "dtype")
SNAPSHOT_COLUMNS = ["id", "path", "start_s", "end_s", "duration_s"]  # what a hit shows
# A new snapshot reads all vectors again past this share of rows it does not hold: a scan
# reads a row several times faster than a take by row id (benchmarks/README.md, "Video
# index").
SNAPSHOT_REREAD_SHARE = 0.15
TAKE_BATCH = 10_000  # row ids per take, rows per copy: a bounded temporary
ID_BATCH = 500  # ids per `IN (…)` query


@dataclass(frozen=True)
class SearchHit:
    path: str
    start: float
    end: float
    score: float
    id: str = ""
    duration: float = float("nan")

    def as_dict(self):
        return {"path": self.path, "start_s": _finite(self.start), "end_s": _finite(self.end),
                "score": self.score, "id": self.id,
                "duration_s": _finite(self.duration)}  # fmt: skip


def _finite(x):
    return None if x is None or np.isnan(x) else float(x)


def _normalise(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt((x * x).sum(axis=-1, keepdims=True) + 1e-12)


class _Snapshot:
    """One table version's rows in memory: every clip's vector and what a hit shows.

    Made from the previous version's snapshot when there is one: a row it held (the same
    Lance row id and clip id: Lance never rewrites a row in place) keeps its vector, and
    only the others are read, so a searcher beside a writer pays for the new rows only.
    """

    def __init__(self, table, version, previous=None):
        self.version = version
        self.dim = table.schema.field("vector").type.list_size
        if previous is not None:
            rows = (table.search().select(SNAPSHOT_COLUMNS).with_row_id(True).limit(None)
                    .to_arrow())  # fmt: skip
            self._describe(rows)
            held = previous.positions(self.rowids, self.ids)
            missing = np.flatnonzero(held < 0)
            if len(missing) <= SNAPSHOT_REREAD_SHARE * len(held):
                kept = len(held) - len(missing)
                if kept == len(previous.rowids) and np.array_equal(held[:kept], np.arange(kept)):
                    # Rows added, none gone: into the previous buffer, after its rows (a
                    # fresh buffer's first touch costs more than the whole search:
                    # benchmarks/README.md, "Video index").
                    self._buffer = previous._room_for(len(held))
                    self.vectors = self._buffer[: len(held)]
                else:
                    self._buffer = self.vectors = np.empty((len(held), self.dim), np.float32)
                    found = np.flatnonzero(held >= 0)
                    for start in range(0, len(found), TAKE_BATCH):
                        part = found[start : start + TAKE_BATCH]
                        self.vectors[part] = previous.vectors[held[part]]
                for start in range(0, len(missing), TAKE_BATCH):
                    part = missing[start : start + TAKE_BATCH]
                    taken = table.take_row_ids(self.rowids[part].tolist()).select(["vector"])
                    self.vectors[part] = self._matrix(taken.to_arrow()["vector"])
                return
        self._read_all(table)

    def _read_all(self, table):
        import pyarrow as pa

        self._buffer = self.vectors = np.empty((table.count_rows(), self.dim), np.float32)
        columns, filled = [], 0
        query = table.search().select([*SNAPSHOT_COLUMNS, "vector"]).with_row_id(True).limit(None)
        for batch in query.to_batches():  # batch by batch: one copy of the vectors in memory
            self.vectors[filled : filled + len(batch)] = self._matrix(batch["vector"])
            filled += len(batch)
            columns.append(batch.drop_columns(["vector"]))
        self.vectors = self.vectors[:filled]
        schema = pa.schema([(name, pa.string()) for name in ("id", "path")])
        self._describe(pa.Table.from_batches(columns) if columns else schema.empty_table())

    def _room_for(self, rows: int) -> np.ndarray:
        """This snapshot's buffer, with room for `rows` rows (grown by a quarter at least)."""
        if len(self._buffer) >= rows:
            return self._buffer
        grown = np.empty((max(rows, len(self._buffer) * 5 // 4), self.dim), np.float32)
        grown[: len(self.vectors)] = self.vectors
        return grown

    def _matrix(self, column):
        if hasattr(column, "combine_chunks"):  # a take's table column: chunked
            column = column.combine_chunks()
        flat = column.flatten().to_numpy(zero_copy_only=False) if len(column) else []
        return np.asarray(flat, np.float32).reshape(len(column), self.dim)

    def _describe(self, rows):
        import pyarrow as pa

        column = lambda name: (rows[name].combine_chunks() if name in rows.column_names  # noqa: E731
                               else pa.nulls(len(rows), pa.float64()))  # fmt: skip
        self.rowids = column("_rowid").to_numpy(zero_copy_only=False).astype(np.uint64)
        self.ids = column("id").to_numpy(zero_copy_only=False)
        self.paths = column("path").to_numpy(zero_copy_only=False)
        # Path → small integer, for the best clip of each video.
        self.codes = column("path").dictionary_encode().indices.to_numpy(zero_copy_only=False)
        nan = lambda name: column(name).cast(pa.float64()).fill_null(np.nan).to_numpy()  # noqa: E731
        self.starts, self.ends, self.durations = nan("start_s"), nan("end_s"), nan("duration_s")
        self._order = None

    def positions(self, rowids, ids=None) -> np.ndarray:
        """Where each Lance row id (and clip id, if given) is in this snapshot; -1 where
        it is not."""
        if not len(self.rowids):
            return np.full(len(rowids), -1)
        if self._order is None:  # the scan's order follows the fragments, not the row ids
            self._order = np.argsort(self.rowids, kind="stable")
            self._sorted = self.rowids[self._order]
        at = np.searchsorted(self._sorted, rowids)
        found = self._order[np.minimum(at, len(self._order) - 1)]
        same = self.rowids[found] == rowids
        if ids is not None:
            same &= self.ids[found] == ids
        return np.where(same, found, -1)

    def hit(self, i, score):
        return SearchHit(self.paths[i], self.starts[i], self.ends[i], float(score), self.ids[i],
                         self.durations[i])  # fmt: skip


class VideoIndex:
    """A video index at `uri`: a folder (created if need be) or any URI Lance takes.

    Args:
        uri: the index; None for a temporary one (deleted with the object; `save` it).
        ann_threshold: rows from which a vector index is built (see the module docstring).
        meta: for a new index, what to record with it (the CLI: preset, soft cap); the
            settings of `add_videos` are added to it.
        storage_options: passed to LanceDB for object stores (credentials, region…).
        in_memory: past `ann_threshold`, hold every clip's vector in memory (4 bytes per
            dimension: 3 GB for a million 768-d clips) and re-rank the vector index's
            candidates there rather than reading them from the table: the fastest searches,
            for a process that searches many times (the server). Below the threshold the
            vectors are held in any case (exact search).
    """

    def __init__(self, uri=None, *, ann_threshold=ANN_THRESHOLD, meta=None,
                 storage_options=None, dim=None, in_memory=False):  # fmt: skip
        if isinstance(uri, int):  # VideoIndex(dim): the previous signature
            warnings.warn("VideoIndex(dim) is deprecated: the dimension comes from the first "
                          "embeddings added; pass the index's location (or nothing)",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
            uri, dim = None, uri
        if uri is None:
            uri = tempfile.mkdtemp(prefix="videoprism-index-")
            weakref.finalize(self, shutil.rmtree, uri, True)
        self.uri = os.fspath(uri)
        self.ann_threshold = ann_threshold
        self.storage_options = storage_options
        self.in_memory = in_memory
        self._new_meta = dict(meta or {})
        self._dim = dim
        self._folder = store.local_path(self.uri) if store.is_local(self.uri) else None
        self._table = self._snapshot = self._db = self._indexed = self._table_dim = None
        self._open()

    # ------------------------------------------------------------------ opening
    def _connect(self):
        import lancedb

        if self._db is None:
            self._db = lancedb.connect(self.uri, storage_options=self.storage_options)
        return self._db

    def _open(self, must_exist=False):
        folder = self._folder
        if folder is not None:
            if folder.exists() and not folder.is_dir():
                raise store.StoreError(f"{self.uri} is a file, not a video index (a folder): "
                                       "give a folder")  # fmt: skip
            if (folder / "index.json").exists() and not store.has_committed_table(folder):
                self._migrate()
            elif not store.has_committed_table(folder):
                if must_exist:
                    raise store.StoreError(f"{self.uri} is not a video index (no {store.TABLE} "
                                           "table in it): give the folder `videoprism index` "
                                           "wrote")  # fmt: skip
                return
            elif any((folder / name).exists() for name in store.LEGACY_FILES):
                store.move_legacy(folder)  # converted, then killed before the move
        try:
            db = self._connect()
            self._table = db.open_table(store.TABLE)
            self._check_schema()
        except ValueError as err:
            if "was not found" in str(err) and not must_exist and folder is None:
                return  # a new index on an object store
            raise store.translate(err, self.uri, "opening it") from err
        except (OSError, RuntimeError) as err:
            raise store.translate(err, self.uri, "opening it") from err

    def _check_schema(self):
        fields = set(self._table.schema.names)
        needed = {"id", "path", "start_s", "end_s", "vector", "last_clip"}
        if not needed <= fields or store.META_KEY not in (self._table.schema.metadata or {}):
            self._table = None
            raise store.StoreError(f"{self.uri} holds a table {store.TABLE!r} that is not a "
                                   "video index (columns or metadata missing): index into "
                                   "another folder")  # fmt: skip

    @classmethod
    def load(cls, uri, ann_threshold=ANN_THRESHOLD, storage_options=None,
             in_memory=False) -> "VideoIndex":  # fmt: skip
        """An existing index (an error if `uri` holds none)."""
        index = cls.__new__(cls)
        index.uri = os.fspath(uri)
        index.ann_threshold = ann_threshold
        index.storage_options = storage_options
        index.in_memory = in_memory
        index._new_meta, index._dim = {}, None
        index._folder = store.local_path(index.uri) if store.is_local(index.uri) else None
        index._table = index._snapshot = index._db = index._indexed = None
        index._table_dim = None
        if index._folder is not None and not index._folder.is_dir():
            raise store.StoreError(f"{index.uri} is not a video index (no such folder): give "
                                   "the folder `videoprism index` wrote")  # fmt: skip
        index._open(must_exist=True)
        return index

    def _migrate(self):
        """The previous format → a table, in one commit; the old files are kept aside."""
        import pyarrow as pa

        folder = self._folder
        with store.locked(folder):
            if store.has_committed_table(folder):  # another process converted it
                store.move_legacy(folder)
                return
            store.discard_uncommitted(folder)
            meta, vectors, items = store.read_legacy(folder)
            meta.update(store.legacy_settings(items))
            meta["format"], meta["converted_from"] = store.FORMAT, "vectors.npy + index.json"
            rows, seen = [], set()
            for item, vector in zip(items, vectors, strict=True):
                file = _identity(item["path"])
                start, end = item["start_s"], item["end_s"]
                key = clip_id(file.file_id, start, end)
                if key in seen:  # the same file named two ways: one row
                    continue
                seen.add(key)
                rows.append((key, file, start, end, vector))
            last = {}
            for i, (_, file, start, _, _) in enumerate(rows):  # the latest clip of a file
                if file.path not in last or (start or 0) >= (rows[last[file.path]][2] or 0):
                    last[file.path] = i
            last_rows = set(last.values())
            table = pa.table({
                "id": [r[0] for r in rows], "file_id": [r[1].file_id for r in rows],
                "path": [r[1].path for r in rows], "start_s": [r[2] for r in rows],
                "end_s": [r[3] for r in rows], "duration_s": [None] * len(rows),
                "size_bytes": [r[1].size for r in rows],
                "mtime_ns": [r[1].mtime_ns for r in rows],
                "last_clip": [i in last_rows for i in range(len(rows))],
                "vector": _vector_column(np.stack([r[4] for r in rows]) if rows else
                                         np.zeros((0, meta["dim"] or 1), np.float32)),
                "poster": pa.nulls(len(rows), pa.binary()),
            }, schema=store.schema(meta["dim"] or 1, meta))  # fmt: skip
            try:
                self._connect().create_table(store.TABLE, data=table)
            except (OSError, RuntimeError, ValueError) as err:
                raise store.translate(err, self.uri, "converting it") from err
            backup = store.move_legacy(folder)
        log.warning(f"videoprism: converted {self.uri} (the previous format, {len(items)} "
                    f"items) to a LanceDB table of {len(rows)} clips; the old files are in "
                    f"{backup} (delete them once satisfied)")  # fmt: skip

    # --------------------------------------------------------------- properties
    @property
    def meta(self) -> dict:
        """The preset, sampling, dimension and anything recorded with the index."""
        if self._table is None:
            return dict(self._new_meta)
        import json

        return json.loads(self._table.schema.metadata[store.META_KEY])

    @property
    def dim(self):
        if self._table is None:
            return self._dim
        if self._table_dim is None:  # fixed once the table exists: read once
            self._table_dim = self.meta.get("dim", self._dim)
        return self._table_dim

    @property
    def version(self) -> int | None:
        """The table version this handle reads (None before the first write)."""
        return None if self._table is None else int(self._table.version)

    def __len__(self):
        return 0 if self._table is None else self._latest().count_rows()

    def _latest(self):
        try:
            self._table.checkout_latest()
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, self.uri, "reading it") from err
        return self._table

    def _rows(self, version=None) -> _Snapshot | None:
        """The rows at the latest version, or at `version`: the one just checked out."""
        if self._table is None:
            return None
        table = self._latest() if version is None else self._table
        version = table.version if version is None else version
        if self._snapshot is None or self._snapshot.version != version:
            try:
                self._snapshot = _Snapshot(table, version, previous=self._snapshot)
            except (OSError, RuntimeError, ValueError) as err:
                raise store.translate(err, self.uri, "reading it") from err
        return self._snapshot

    @property
    def paths(self) -> list[str]:
        rows = self._rows()
        return [] if rows is None else list(rows.paths)

    @property
    def starts(self) -> np.ndarray:
        rows = self._rows()
        return np.zeros(0) if rows is None else rows.starts

    @property
    def ends(self) -> np.ndarray:
        rows = self._rows()
        return np.zeros(0) if rows is None else rows.ends

    @property
    def vectors(self) -> np.ndarray:
        rows = self._rows()
        return np.zeros((0, self.dim or 0), np.float32) if rows is None else rows.vectors

    def keys(self) -> set:
        """The `item_key(path, start, end)` of every clip."""
        rows = zip(self.paths, self.starts, self.ends, strict=True)
        return {item_key(*row) for row in rows}

    def poster(self, clip_id: str) -> bytes | None:
        """The JPEG poster frame of a clip (a `SearchHit.id`); None if it has none."""
        if self._table is None:
            return None
        found = (self._latest().search().where(f"id = {store.sql_string(clip_id)}")
                 .select(["poster"]).limit(1).to_arrow())  # fmt: skip
        return found["poster"][0].as_py() if len(found) else None

    def clip(self, clip_id: str) -> dict | None:
        """One clip's row (id, path, start_s, end_s, duration_s, vector), at the latest
        version; None if the index holds no such clip."""
        if self._table is None:
            return None
        columns = ["id", "path", "start_s", "end_s", "duration_s", "vector"]
        found = (self._latest().search().where(f"id = {store.sql_string(clip_id)}")
                 .select(columns).limit(1).to_arrow().to_pylist())  # fmt: skip
        if not found:
            return None
        row = found[0]
        row["vector"] = np.asarray(row["vector"], np.float32)
        return row

    # ------------------------------------------------------------------ writing
    def _ensure_table(self, dim: int, settings: dict):
        if self._table is not None:
            return
        meta = {**self._new_meta, **settings, "dim": int(dim), "format": store.FORMAT}
        folder = self._folder
        try:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
            with store.locked(folder):
                if folder is not None:
                    store.discard_uncommitted(folder)
                self._table = self._connect().create_table(
                    store.TABLE, schema=store.schema(dim, meta), exist_ok=True
                )  # exist_ok: another process created it first; its metadata is checked
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, self.uri, "creating it") from err
        self._check_schema()

    def _check_settings(self, settings: dict, dim: int | None = None):
        meta = self.meta if self._table is not None else {}
        for key in SETTINGS:
            if key in meta and key in settings and meta[key] != settings[key]:
                raise ValueError(f"{self.uri} was indexed with {key}={meta[key]!r}; got "
                                 f"{key}={settings[key]!r}: use the index's {key}, or another "
                                 "index for other settings")  # fmt: skip
        stored = meta.get("dim")
        if dim is not None and stored is not None and stored != dim:
            raise ValueError(f"{self.uri} holds {stored}-d embeddings; got {dim}-d ones (another "
                             "model): use the index's preset, or another index")  # fmt: skip

    def _commit(self, table, stale: str | None = None):
        """One merge on `id` (rows the table holds are left as they are), under the lock,
        against the latest version (see index_store.py)."""
        try:
            with store.locked(self._folder):
                self._table.checkout_latest()
                if stale:
                    self._table.delete(stale)
                if len(table):
                    (self._table.merge_insert("id").when_not_matched_insert_all()
                     .execute(table))  # fmt: skip
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, self.uri, "writing to it") from err

    def writer(self, model=None, clip_seconds=None, stride_seconds=None, *, num_frames=None,
               size=None) -> "IndexWriter":  # fmt: skip
        """The way to write clips into this index (see `IndexWriter`), for clips that
        `model` embeds with this sampling; an error now if the index holds other settings.
        Without a model, no settings are checked or recorded (only the dimension)."""
        settings = {} if model is None else _settings(model, clip_seconds, stride_seconds,
                                                      num_frames, size)  # fmt: skip
        return IndexWriter(self, settings)

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of the inputs recorded as not embedded (latest first)."""
        return store.read_failures(self._connect())

    def add(self, embeddings: Embeddings, posters=None) -> "VideoIndex":
        """Adds (N, D) video embeddings with their paths and clip times, in one commit.

        Paths that name files are stored as their real path, with the file's identity;
        rows of an earlier version of a file (same path, other size or mtime) are removed.
        """
        if len(embeddings) == 0:
            return self
        vectors = _normalise(embeddings.vectors)
        if vectors.ndim != 2:
            raise ValueError(f"an index holds (N, D) video embeddings; got {vectors.shape}")
        files = {p: _identity(p) for p in map(str, embeddings.paths)}
        rows = self.writer()._rows([files[str(p)] for p in embeddings.paths],
                                   embeddings.starts, embeddings.ends, embeddings.vectors,
                                   [True] * len(vectors), posters)  # fmt: skip
        stale = _stale(list(files.values()))
        for predicate in stale[:-1]:
            self._commit(self._empty(), predicate)
        self._commit(rows, stale[-1] if stale else None)
        self._maintain()
        return self

    def add_videos(self, model, sources, clip_seconds=None, stride_seconds=None,
                   skip_existing=True, **options) -> Embeddings:  # fmt: skip
        """Embeds video files and folders (walked recursively) and adds them, committing
        each batch as it is done.

        Args:
            model: the `VideoPrismBackbone` whose embedding space the index holds.
            sources: video files and/or folders; files are stored by their real path.
            clip_seconds, stride_seconds: index windows of long videos (with times).
            skip_existing: leave out (without decoding a finished file, or running the
                model on a clip) what the index holds.
            **options: `embed_videos` options (batch_size, num_frames, size, progress,
                on_error, encoder).

        Returns the `Embeddings` added, as a record: paths and clip times (the vectors
        are in the index, so `vectors` is (N, 0)); `skipped` counts the clips the index
        already held, `failures` the sources that could not be embedded (dangling or
        looping symlinks and folders named like videos are always failures, not errors).
        """
        files, failures = video_files(sources)
        writer = self.writer(model, clip_seconds, stride_seconds,
                             num_frames=options.get("num_frames"),
                             size=options.get("size"))  # fmt: skip
        held, todo = writer.prepare(files, skip_existing)
        by_path = {f.path: f for f in files}
        skipped = [sum(len(keys) for keys, whole in held.values() if whole)]
        todo = [f.path for f in todo]
        reader = _HeldClips(self, by_path, held) if skip_existing else (lambda *item: False)
        paths, starts, ends = [], [], []
        batches = embed_batches(model, todo, "video", clip_seconds=clip_seconds,
                                stride_seconds=stride_seconds, exclude=reader,
                                failures=failures, skipped=skipped,
                                **{k: v for k, v in options.items() if k != "kind"})  # fmt: skip
        for batch in batches:
            posters = [_poster(f) for f in batch.frames]
            writer.commit([by_path[p] for p in batch.paths], batch.starts, batch.ends,
                          batch.vectors, batch.last, posters)  # fmt: skip
            paths += batch.paths
            starts += batch.starts
            ends += batch.ends
        if not paths and not skipped[0] and todo:
            raise nothing_embedded(failures)
        writer.finish()
        return Embeddings(np.zeros((len(paths), 0), np.float32), paths, starts, ends,
                          failures=failures, skipped=skipped[0])  # fmt: skip

    @classmethod
    def from_videos(cls, model, sources, clip_seconds=None, stride_seconds=None,
                    ann_threshold=ANN_THRESHOLD, meta=None, uri=None,
                    **options) -> "VideoIndex":  # fmt: skip
        """An index of video files and folders (see `add_videos`) at `uri` (default: a
        temporary one; `save` it)."""
        index = cls(uri, ann_threshold=ann_threshold, meta=meta)
        index.add_videos(model, sources, clip_seconds, stride_seconds, **options)
        return index

    def _empty(self):
        return _table(self.meta, [], [], [], np.zeros((0, self.dim), np.float32), [], [], [])

    def _held(self, files) -> dict:
        """file_id → (item keys the index holds, whether the file is complete), for the
        files given."""
        held: dict = {}
        if self._table is None:
            return held
        table = self._latest()
        ids = [f.file_id for f in files]
        for i in range(0, len(ids), ID_BATCH):
            chunk = ", ".join(map(store.sql_string, ids[i : i + ID_BATCH]))
            rows = (table.search().where(f"file_id IN ({chunk})")
                    .select(["file_id", "path", "start_s", "end_s", "last_clip"])
                    .limit(None).to_arrow().to_pylist())  # fmt: skip
            for row in rows:
                keys, complete = held.get(row["file_id"], (set(), False))
                keys.add(item_key(row["path"], row["start_s"], row["end_s"]))
                held[row["file_id"]] = (keys, complete or bool(row["last_clip"]))
        return held

    def _maintain(self):
        """Past `ann_threshold` rows: builds the vector index once; then keeps it up to
        date (`optimize`: compaction, new rows into the index), whatever the threshold.
        One process at a time; a failure here loses nothing (the rows are committed and
        exact search finds them)."""
        if self._table is None:
            return
        with store.locked(self._folder, store.MAINTENANCE_LOCK_FILE, wait=False) as mine:
            if not mine:
                return
            table = self._latest()
            try:
                rows = table.count_rows()
                if _vector_index(table):  # however it came to be: kept up to date
                    table.optimize(cleanup_older_than=KEEP_OLD_VERSIONS)
                elif rows >= self.ann_threshold:
                    table.create_index("vector", config=_ann_config(rows), replace=True)
                elif table.stats()["fragment_stats"]["num_small_fragments"] > 64:
                    table.optimize(cleanup_older_than=KEEP_OLD_VERSIONS)  # many small commits
            except (OSError, RuntimeError, ValueError) as err:
                log.warning(f"videoprism: {self.uri}: index maintenance failed, the clips are "
                            f"all stored; run again to retry ({err})")  # fmt: skip

    # ------------------------------------------------------------------ search
    def search(self, queries, top_k=5, *, where=None, under=None, per_video=False,
               exact=None, nprobes=None,
               refine_factor=ANN_REFINE_FACTOR) -> list[list[SearchHit]]:  # fmt: skip
        """(Q, D) or (D,) query embeddings → per query, the top-k hits, best first.

        Args:
            where: a SQL predicate over the columns path, start_s, end_s, duration_s,
                size_bytes (e.g. "duration_s > 60 AND start_s < 30").
            under: only videos in this folder (or its sub-folders).
            per_video: the best clip of each video: top-k videos, not clips.
            exact: True for exact search whatever the size; default exact until the
                table has a vector index (past `ann_threshold` rows).
            nprobes, refine_factor: the vector index's search depth (lists searched,
                default half of them; candidates re-ranked exactly, as a multiple of
                top_k).
        """
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer. Received: top_k={top_k}")
        if self._table is None:
            raise ValueError(f"the index {self.uri} is empty: add videos to it first")
        queries = _normalise(np.atleast_2d(queries))
        if queries.shape[1] != self.dim:
            raise ValueError(f"the queries are {queries.shape[1]}-d, the index {self.uri} "
                             f"holds {self.dim}-d embeddings: embed them with the index's "
                             "preset")  # fmt: skip
        predicate = _predicate(where, under)
        table = self._latest()
        if self._indexed is None or self._indexed[0] != table.version:
            self._indexed = (table.version, _vector_index(table), table.count_rows())
        if exact or (exact is None and not self._indexed[1]):
            return self._exact(queries, top_k, predicate, per_video)
        if nprobes is None:  # the lists were made for fewer rows, or as many: no fewer probed
            nprobes = math.ceil(ANN_PROBED_SHARE * _partitions(self._indexed[2]))
        search = self._reranked if self.in_memory else self._approximate
        return [search(table, q, top_k, predicate, per_video, nprobes, refine_factor)
                for q in queries]  # fmt: skip

    def _selected(self, rows: _Snapshot, predicate):
        if predicate is None:
            return np.arange(len(rows.rowids))
        try:
            found = (self._table.search().where(predicate).select(["id"]).with_row_id(True)
                     .limit(None).to_arrow())  # fmt: skip
        except ValueError as err:
            raise ValueError(f"the filter {predicate!r} is not valid SQL over the index's "
                             f"columns ({str(err).splitlines()[0]})") from err  # fmt: skip
        return np.flatnonzero(np.isin(rows.rowids, found["_rowid"].to_numpy()))

    def _exact(self, queries, top_k, predicate, per_video):
        rows = self._rows(self._indexed[0])  # search() has just moved to the latest version
        if not len(rows.rowids):
            raise ValueError(f"the index {self.uri} is empty: add videos to it first")
        chosen = self._selected(rows, predicate)
        if not len(chosen):
            return [[] for _ in queries]
        sims = queries @ rows.vectors[chosen].T if len(chosen) < len(rows.rowids) else (
            queries @ rows.vectors.T)  # fmt: skip
        if not per_video:  # all queries at once: O(N) to find the k, then sort them
            k = min(top_k, sims.shape[1])
            best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sims, best, 1), axis=1, kind="stable")
            best = np.take_along_axis(best, order, 1)
        out = []
        videos = rows.codes[chosen] if per_video else None  # once, not per query
        for q, scores in enumerate(sims):
            if per_video:
                top = _first_of_each(np.argsort(-scores, kind="stable"), videos)[:top_k]
            else:
                top = best[q]
            out.append([rows.hit(chosen[i], scores[i]) for i in top])
        return out

    def _candidates(self, search, predicate):
        if predicate is not None:
            search = search.where(predicate, prefilter=True)
        try:
            return search.to_arrow()
        except ValueError as err:
            raise ValueError(f"the filter {predicate!r} is not valid SQL over the index's "
                             f"columns ({str(err).splitlines()[0]})") from err  # fmt: skip

    def _reranked(self, table, query, top_k, predicate, per_video, nprobes, refine_factor):
        """The vector index's candidates (row ids only), re-ranked against the vectors
        held in memory: what `refine_factor` does, without reading the candidates' rows."""
        rows = self._rows(self._indexed[0])  # search() has just moved to the latest version
        limit = top_k * refine_factor
        while True:
            # (Selecting nothing would read every column: the distance is the least.)
            search = (table.search(query, "vector").distance_type("dot").nprobes(nprobes)
                      .limit(limit).select(["_distance"]).with_row_id(True))  # fmt: skip
            found = self._candidates(search, predicate)["_rowid"].to_numpy()
            at = rows.positions(found)
            if (at < 0).any():  # not the version held (cannot happen): Lance's own refine
                return self._approximate(table, query, top_k, predicate, per_video, nprobes,
                                         refine_factor)  # fmt: skip
            scores = rows.vectors[at] @ query
            order = np.argsort(-scores, kind="stable")
            # A copy of a clip (see index_store.py) once; per video, its best clip.
            top = _first_of_each(order, (rows.codes if per_video else rows.ids)[at])
            if len(top) >= top_k or len(found) < limit:
                return [rows.hit(at[i], scores[i]) for i in top[:top_k]]
            limit *= 4  # per video: too few distinct videos among the candidates

    def _approximate(self, table, query, top_k, predicate, per_video, nprobes, refine_factor):
        limit = top_k * (8 if per_video else 1)
        while True:
            columns = ["id", "path", "start_s", "end_s", "duration_s", "_distance"]
            search = (table.search(query, "vector").distance_type("dot").nprobes(nprobes)
                      .refine_factor(refine_factor).limit(limit).select(columns))  # fmt: skip
            found = self._candidates(search, predicate).to_pylist()
            hits, seen = [], set()
            for row in found:  # best first; a copy of a clip (see index_store.py) once
                key = row["path"] if per_video else row["id"]
                if key in seen:
                    continue
                seen.add(key)
                time = lambda t: np.nan if t is None else t  # noqa: E731
                hits.append(SearchHit(row["path"], time(row["start_s"]), time(row["end_s"]),
                                      1.0 - row["_distance"], row["id"],
                                      time(row["duration_s"])))  # fmt: skip
            if len(hits) >= top_k or len(found) < limit:
                return hits[:top_k]
            limit *= 4  # per video: too few distinct videos among the candidates

    # --------------------------------------------------------------- save/load
    def save(self, directory) -> Path:
        """Copies the index to `directory` (a new index there); every write is already
        committed, so saving an index to its own location does nothing."""
        target = os.fspath(directory)
        if os.path.abspath(target) == os.path.abspath(self.uri):
            return Path(target)
        copy = VideoIndex(target, ann_threshold=self.ann_threshold, meta=self.meta)
        if copy._table is not None and len(copy):
            raise ValueError(f"{target} already holds an index: save to a new folder")
        if self._table is not None:
            data = self._latest().to_arrow()
            meta = self.meta
            copy._ensure_table(meta["dim"], {})
            copy._commit(data.replace_schema_metadata(copy._table.schema.metadata))
            copy._maintain()
        else:
            Path(target).mkdir(parents=True, exist_ok=True)
        return Path(target)


class IndexWriter:
    """Writes clips into a `VideoIndex`: the one way in, shared by `add_videos` and the Ray
    pipeline's driver (get one with `VideoIndex.writer`), so that every writer keeps the
    index's invariants:

    - the settings (preset, sampling, dimension) are those the index holds, checked
      before any work (`VideoIndex.writer`) and at each commit (the dimension);
    - `prepare` tells what the index holds of the files to write, and removes the rows
      of earlier versions of them (same path, other size or mtime) first;
    - `commit` stores a batch of clips in one Lance commit: a merge on the clip's `id`
      under the index's lock, so a clip embedded twice is stored once;
    - a file's `last_clip` is set when the file is whole (`commit`'s `last`, or later
      `mark_complete`): a later run skips a file only when it is;
    - inputs that could not be embedded are kept in the failures table
      (`record_failures`, `forget_failures`);
    - `finish` maintains the table (vector index, compaction) once the writes are done.
    """

    def __init__(self, index: VideoIndex, settings: dict):
        index._check_settings(settings)
        self.index, self.settings = index, settings
        self._durations: dict = {}  # file_id → the video's duration: probed once per file

    def held(self, files) -> dict:
        """file_id → (item keys of the clips the index holds, whether the file is whole)."""
        return self.index._held(files)

    def prepare(self, files, skip_existing=True) -> tuple[dict, list]:
        """(`held` of the files, or {} with `skip_existing` False; the files not whole, to
        be written); the rows of earlier versions of those files are removed now."""
        held = self.held(files) if skip_existing else {}
        todo = [f for f in files if not held.get(f.file_id, (set(), False))[1]]
        index = self.index
        if index._table is not None:
            for stale in _stale(todo):
                index._commit(index._empty(), stale)
        return held, todo

    def commit(self, files, starts, ends, vectors, last, posters=None, durations=None):
        """Stores clips, one per row: their `VideoFile`s, times, (N, D) embeddings
        (normalised here), whether each is its file's last (set only once the file is
        whole), JPEG posters, and the videos' durations in seconds (None or NaN for
        unknown; default: probed once per file)."""
        self.index._commit(self._rows(files, starts, ends, vectors, last, posters, durations))

    def mark_complete(self, ids):
        """Sets `last_clip` on these clip ids (files whose last clip was committed before
        the file was whole)."""
        index = self.index
        if not ids or index._table is None:
            return
        with store.locked(index._folder):
            index._table.checkout_latest()
            for i in range(0, len(ids), ID_BATCH):
                chunk = ", ".join(map(store.sql_string, ids[i : i + ID_BATCH]))
                index._table.update(where=f"id IN ({chunk})", values={"last_clip": True})

    def record_failures(self, failures):
        """(path, reason) of inputs that could not be embedded, into the failures table."""
        store.record_failures(self.index._connect(), self.index._folder, failures)

    def forget_failures(self, paths):
        """Paths now whole in the index are no longer failures."""
        if paths:
            store.forget_failures(self.index._connect(), self.index._folder, paths, ID_BATCH)

    def finish(self):
        """Once the writes are done: the table's maintenance (see `VideoIndex`)."""
        self.index._maintain()

    def _rows(self, files, starts, ends, vectors, last, posters=None, durations=None):
        index = self.index
        vectors = _normalise(vectors)
        index._check_settings({}, vectors.shape[1])
        index._ensure_table(vectors.shape[1], self.settings)
        if durations is None:
            durations = [self._duration(f) for f in files]
        durations = [None if d is None or np.isnan(d) else float(d) for d in durations]
        return _table(index.meta, files, starts, ends, vectors, last, posters, durations)

    def _duration(self, file):
        if file.file_id not in self._durations:  # once per file (version), not per clip
            if len(self._durations) > 1024:
                self._durations.clear()
            self._durations[file.file_id] = _duration(file.path) if file.size >= 0 else None
        return self._durations[file.file_id]


def _settings(model, clip_seconds, stride_seconds, num_frames=None, size=None) -> dict:
    size = tuple(size or model.frame_shape[:2])
    return {
        "num_frames": int(num_frames or model.num_frames),
        "size": int(size[0]) if size[0] == size[1] else [int(s) for s in size],
        "clip_seconds": float(clip_seconds) if clip_seconds else None,
        "stride_seconds": float(stride_seconds or clip_seconds) if clip_seconds else None,
        "dtype": getattr(getattr(model, "dtype_policy", None), "name", "float32"),
        "backbone": _backbone_config(model),
    }


class _HeldClips:
    """`embed_batches(exclude=…)` for an index: whether the index holds a clip. A file's
    clips are looked up again when its first clip comes, so that a file another process
    indexed meanwhile is not embedded twice."""

    def __init__(self, index, by_path, held):
        self.index, self.by_path, self.held = index, by_path, held
        self.current = self.reader = None

    def __call__(self, path, start, end) -> bool:
        file = self.by_path.get(str(path))
        if file is None:
            return False
        if self.current != file.file_id and self.index._table is not None:
            self.current = file.file_id
            self.reader = self.reader or _reader(self.index)
            self.held.update(self.reader._held([file]))
        return item_key(file.path, start, end) in self.held.get(file.file_id, (set(), False))[0]


def _reader(index):
    """A second handle on the table, for the decoding thread (the main one commits)."""
    reader = VideoIndex.__new__(VideoIndex)
    reader.uri, reader._table = index.uri, None
    reader._table = index._connect().open_table(store.TABLE)
    return reader


def _backbone_config(model) -> dict | None:
    """The model's configuration, as JSON keeps it (recorded, not compared: the preset is)."""
    import json

    try:
        return json.loads(json.dumps(model.get_config(), default=str))
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _identity(path) -> VideoFile:
    """A file's identity; a name that is no file (e.g. an array's label) stands for itself."""
    try:
        return identify(path)
    except OSError:
        return VideoFile(str(path), -1, -1)


def _stale(files) -> list[str]:
    """SQL for the rows of earlier versions of these files (same path, other identity),
    a few hundred files per predicate."""
    terms = [f"(path = {store.sql_string(f.path)} AND file_id != {store.sql_string(f.file_id)})"
             for f in files if f.size >= 0]  # fmt: skip
    return [" OR ".join(terms[i : i + ID_BATCH]) for i in range(0, len(terms), ID_BATCH)]


def _duration(path) -> float | None:
    from ..video import probe

    try:
        return float(probe(path, exact=False).duration) or None
    except (OSError, ValueError):
        return None


def _table(meta, files, starts, ends, vectors, last, posters, durations):
    import pyarrow as pa

    def time(t):
        return None if t is None or np.isnan(t) else float(t)

    posters = list(posters) if posters is not None else [None] * len(files)
    return pa.table({
        "id": [clip_id(f.file_id, s, e) for f, s, e in zip(files, starts, ends, strict=True)],
        "file_id": [f.file_id for f in files], "path": [f.path for f in files],
        "start_s": [time(s) for s in starts], "end_s": [time(e) for e in ends],
        "duration_s": durations, "size_bytes": [f.size for f in files],
        "mtime_ns": [f.mtime_ns for f in files], "last_clip": [bool(x) for x in last],
        "vector": _vector_column(vectors), "poster": pa.array(posters, pa.binary()),
    }, schema=store.schema(meta["dim"], meta))  # fmt: skip


def _vector_column(vectors):
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def _poster(frames) -> bytes:
    """The middle frame of a clip, as the model saw it, as a small JPEG."""
    from PIL import Image

    frame = np.asarray(frames[len(frames) // 2])
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(frame)
    image.thumbnail((POSTER_SIDE, POSTER_SIDE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _first_of_each(order, keys) -> np.ndarray:
    """`order` (best first) keeping the first of each key: the best clip of each video."""
    _, first = np.unique(keys[order], return_index=True)
    return order[np.sort(first)]


def _vector_index(table) -> bool:
    return any("vector" in getattr(i, "columns", []) for i in table.list_indices())


def _partitions(rows: int) -> int:
    """√N/4 lists, but no fewer than ANN_MIN_PARTITIONS once each can have
    ANN_MIN_LIST_ROWS rows: at a given share probed, recall grows with the lists."""
    floor = min(ANN_MIN_PARTITIONS, rows // ANN_MIN_LIST_ROWS)
    return max(16, floor, int(ANN_PARTITIONS_PER_SQRT_ROW * np.sqrt(rows)))


def _ann_config(rows: int):
    from lancedb.index import IvfRq

    return IvfRq(distance_type="dot", num_partitions=_partitions(rows), num_bits=1,
                 max_iterations=ANN_ITERATIONS, sample_rate=ANN_SAMPLE_RATE)  # fmt: skip


def _predicate(where, under) -> str | None:
    terms = []
    if where:
        terms.append(f"({where})")
    if under is not None:
        folder = os.path.realpath(os.fspath(under))
        terms.append(f"starts_with(path, {store.sql_string(folder.rstrip(os.sep) + os.sep)})")
    return " AND ".join(terms) or None
