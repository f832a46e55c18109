"""`ClipTable`: the LanceDB table behind a video index, and what may be done to it.

It opens the table (converting the previous format first: `legacy.py`) or creates it at
the first write, checks that it is a video index and that what is written agrees with
the settings recorded in it (the model's preset and the sampling: frames, size, clip and
stride seconds, dtype, engine), and gives the write methods that `IndexWriter` (`writer.py`)
builds on: each one commit under the index's lock (`store.py`), tried again when another
writer's commit got in the way (`commits.py`; `attempts` counts). Its facts are `stats()`.
`VideoIndex` (`video_index.py`) adds search and the ways to add videos.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...constants import (
    ANN_THRESHOLD,
    INDEX_KEEP_VERSIONS_SECONDS,
    INDEX_LEGACY_ENGINE,
    INDEX_REFRESH_SECONDS,
    INDEX_REFRESH_SECONDS_LOCAL,  # fmt: skip
)
from ...deprecation import message as deprecation_message
from ...video.times import seconds_or_nan, seconds_or_none
from ..embedding import item_key
from ..identity import VideoFile
from . import ann, commits, fingerprint, legacy, maintenance, store

if TYPE_CHECKING:
    import pyarrow as pa
    from lancedb.table import LanceTable

# How long ago a read looked for a new version (a module name: the tests' clock replaces it
# for this module alone, not for every thread's `time.monotonic`).
_clock = time.monotonic

SETTINGS = ("num_frames", "size", "clip_seconds", "stride_seconds", "dtype", "engine")
NEEDED_COLUMNS = {"id", "path", "start_s", "end_s", "vector", "last_clip"}


@dataclass(frozen=True)
class IndexStats:
    """Facts about an index's table at its latest version (`ClipTable.stats`).

    Attributes:
        rows: int. Clips the table holds.
        version: int or None. The latest table version; None before the first write.
        fragments: int. Lance data fragments (compaction merges small ones).
        versions: int. Table versions kept (maintenance deletes old ones after a while).
        indices: int. Indices on the table, the vector index among them.
        vector_index: str or None. The vector index's name; None until it is built.
        vector_index_id: str or None. Its uuid: a new one whenever it is built again or
            updated (new rows into it).
        unindexed_rows: int. Rows the vector index does not cover yet (searched
            exhaustively); every row without a vector index.
    """

    rows: int = 0
    version: int | None = None
    fragments: int = 0
    versions: int = 0
    indices: int = 0
    vector_index: str | None = None
    vector_index_id: str | None = None
    unindexed_rows: int = 0

    @property
    def has_vector_index(self) -> bool:
        return self.vector_index is not None


@dataclass(frozen=True, eq=False)
class IndexedClip:
    """One clip of an index, as `ClipTable.clip` (`VideoIndex.clip`) finds it.

    Reading it as a dict (`clip["path"]`, `clip.get("path")`), as when `clip` returned
    one, still works for one release, with a `DeprecationWarning`.

    Attributes:
        id: str. The clip's id (`SearchHit.id`).
        path: str. The video's path (its real path, for a file).
        start_s: float. The clip's start in seconds; NaN for a whole video.
        end_s: float. The clip's end in seconds; NaN for a whole video.
        duration_s: float. The video's duration in seconds; NaN if unknown.
        vector: (D,) float32 array. The clip's embedding.
    """

    id: str
    path: str
    start_s: float
    end_s: float
    duration_s: float
    vector: np.ndarray

    def as_dict(self) -> dict:
        """The clip as a dict: id, path, start_s, end_s, duration_s (None where unknown,
        as JSON has them) and vector (the float32 array)."""
        return {"id": self.id, "path": self.path, "start_s": seconds_or_none(self.start_s),
                "end_s": seconds_or_none(self.end_s),
                "duration_s": seconds_or_none(self.duration_s), "vector": self.vector}  # fmt: skip

    def _as_old_dict(self, key: Any) -> dict:
        warnings.warn(deprecation_message("VideoIndex.clip", f"clip[{key!r}]", f"clip.{key}"),
                      DeprecationWarning, stacklevel=3)  # fmt: skip
        return self.as_dict()

    def __getitem__(self, key: str) -> Any:
        return self._as_old_dict(key)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._as_old_dict(key).get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._as_old_dict(key)

    def __iter__(self) -> Any:
        return iter(self._as_old_dict("iter()"))

    def __len__(self) -> int:
        return len(self._as_old_dict("len()"))

    def keys(self) -> Any:
        return self._as_old_dict("keys()").keys()

    def items(self) -> Any:
        return self._as_old_dict("items()").items()

    def values(self) -> Any:
        return self._as_old_dict("values()").values()


class ClipTable:
    """The clips table of the index at `uri` (a folder or any URI Lance takes).

    Args:
        uri: str or path. The index.
        ann_threshold: int. Rows from which `maintain` builds a vector index. Defaults
            to `constants.ANN_THRESHOLD`.
        meta: dict or None. For a new index, what to record with it; the settings of
            the first commit are added to it. Defaults to None.
        storage_options: dict or None. Passed to LanceDB for object stores
            (credentials, region…). Defaults to None.
        dim: int or None. The dimension before the first write (deprecated). Defaults
            to None.
        create: bool. Whether `uri` may hold no index yet (the table is created at the
            first commit); False raises an error instead. Defaults to True.
        refresh_seconds: float or None. How stale a read may be: reads look for a newer
            committed version (other processes' commits) at most every this many
            seconds; 0 at every read. This handle's own commits are read at once.
            Defaults to None: `constants.INDEX_REFRESH_SECONDS` on an object store (each
            look is a request), `constants.INDEX_REFRESH_SECONDS_LOCAL` (every read) in
            a local folder.

    Attributes:
        keep_versions_s: float. Seconds a replaced table version is kept for readers
            still on it before maintenance deletes it: longer than any read of one
            version lasts. Defaults to `constants.INDEX_KEEP_VERSIONS_SECONDS`.
    """

    def __init__(self, uri: str | os.PathLike, *, ann_threshold: int = ANN_THRESHOLD,
                 meta: dict | None = None, storage_options: dict | None = None,
                 dim: int | None = None, create: bool = True,
                 refresh_seconds: float | None = None):  # fmt: skip
        self.uri = os.fspath(uri)
        self.ann_threshold = ann_threshold
        self.storage_options = storage_options
        self.keep_versions_s, self._upkeep = INDEX_KEEP_VERSIONS_SECONDS, maintenance.Upkeep()
        self._new_meta = dict(meta or {})
        self._dim = dim
        self._folder = store.local_path(self.uri) if store.is_local(self.uri) else None
        self._table = self._db = self._table_dim = None
        self.refresh_seconds = _refresh_seconds(self.uri, refresh_seconds)
        self._looked_at = -math.inf  # _clock() of the last look for a new version
        self._attempts = commits.CommitAttempts()
        self._keyed = False  # whether the table's `id` is known to be its primary key
        if not create and self._folder is not None and not self._folder.is_dir():
            what = "a file, not a folder" if self._folder.exists() else "no such folder"
            raise store.StoreError(f"{self.uri} is not a video index ({what}): give "
                                   "the folder `videoprism index` wrote")  # fmt: skip
        self._open(must_exist=not create)

    def reader(self) -> ClipTable:
        """Another handle on this (existing) table, for another thread."""
        return ClipTable(self.uri, ann_threshold=self.ann_threshold,
                         storage_options=self.storage_options, create=False,
                         refresh_seconds=self.refresh_seconds)  # fmt: skip

    # ------------------------------------------------------------------ opening
    def _connect(self):
        import lancedb

        if self._db is None:
            self._db = lancedb.connect(self.uri, storage_options=self.storage_options)
        return self._db

    def _open(self, must_exist):
        folder = self._folder
        if folder is not None:
            if folder.exists() and not folder.is_dir():
                raise store.StoreError(f"{self.uri} is a file, not a video index (a folder): "
                                       "give a folder")  # fmt: skip
            if legacy.is_legacy(folder):
                legacy.migrate(folder, self._connect(), self.uri)
            elif store.lost_versions(folder):  # not to be taken for a new index
                raise store.versions_lost(self.uri, folder)
            elif not store.has_committed_table(folder):
                if must_exist:
                    raise store.StoreError(f"{self.uri} is not a video index (no {store.TABLE} "
                                           "table in it): give the folder `videoprism index` "
                                           "wrote")  # fmt: skip
                return
            elif legacy.has_leftovers(folder):
                legacy.move_legacy(folder)  # converted, then killed before the move
        try:
            self._looked_at = _clock()  # opening reads the latest version
            self._table = self._connect().open_table(store.TABLE)
            self._check_schema()
        except ValueError as err:
            if "was not found" in str(err) and not must_exist and folder is None:
                return  # a new index on an object store
            raise store.translate(err, self.uri, "opening it") from err
        except (OSError, RuntimeError) as err:
            raise store.translate(err, self.uri, "opening it") from err

    def _check_schema(self):
        schema = self._table.schema
        if not NEEDED_COLUMNS <= set(schema.names) or store.META_KEY not in (schema.metadata
                                                                             or {}):  # fmt: skip
            self._table = None
            raise store.StoreError(f"{self.uri} holds a table {store.TABLE!r} that is not a "
                                   "video index (columns or metadata missing): index into "
                                   "another folder")  # fmt: skip

    # -------------------------------------------------------------------- reads
    def latest(self, *, fresh: bool = False) -> LanceTable | None:
        """The LanceDB table (`lancedb.table.LanceTable`) moved to its latest version,
        as seen at most `refresh_seconds` ago (with `fresh`, looked for now); None before
        the first write."""
        if self._table is None:
            return None
        began = _clock()
        if fresh or began - self._looked_at >= self.refresh_seconds:
            try:
                self._table.checkout_latest()
            except (OSError, RuntimeError, ValueError) as err:
                raise store.translate(err, self.uri, "reading it") from err
            self._looked_at = began  # when the look began: the bound holds from there
        return self._table

    @property
    def meta(self) -> dict:
        """The preset, sampling, dimension and anything recorded with the index."""
        if self._table is None:
            return dict(self._new_meta)
        return json.loads(self._table.schema.metadata[store.META_KEY])

    @property
    def dim(self) -> int | None:
        """The embeddings' dimension (None before the first write)."""
        if self._table is None:
            return self._dim
        if self._table_dim is None:  # fixed once the table exists: read once
            self._table_dim = self.meta.get("dim", self._dim)
        return self._table_dim

    @property
    def version(self) -> int | None:
        """The table version this handle reads (None before the first write)."""
        return None if self._table is None else int(self._table.version)

    def __len__(self) -> int:
        return 0 if self._table is None else self.latest().count_rows()

    def stats(self) -> IndexStats:
        """Facts about the table at its latest version (see `IndexStats`)."""
        table = self.latest()
        if table is None:
            return IndexStats()
        try:
            rows, found = table.count_rows(), ann.find(table)
            return IndexStats(
                rows=rows, version=int(table.version),
                fragments=table.stats()["fragment_stats"]["num_fragments"],
                versions=len(table.list_versions()), indices=len(table.list_indices()),
                vector_index=found.name if found else None,
                vector_index_id=found.index_uuid if found else None,
                unindexed_rows=(table.index_stats(found.name).num_unindexed_rows if found
                                else rows),
            )  # fmt: skip
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, self.uri, "reading it") from err

    def to_arrow(self) -> pa.Table:
        """Every clip's row at the latest version, as a `pyarrow.Table` (columns:
        `store.schema`)."""
        table = self.latest()
        if table is None:
            return store.schema(self.dim or 1, self.meta).empty_table()
        return table.to_arrow()

    def poster(self, clip_id: str) -> bytes | None:
        """The JPEG poster frame of a clip (a `SearchHit.id`); None if it has none."""
        found = self._by_id(clip_id, ["poster"])
        return found[0]["poster"] if found else None

    def clip(self, clip_id: str) -> IndexedClip | None:
        """One clip (id, path, start_s, end_s, duration_s, vector), at the latest version.

        Args:
            clip_id: str. The clip's id (a `SearchHit.id`).

        Returns:
            An `IndexedClip`; None if the index holds no such clip.
        """
        found = self._by_id(clip_id, ["id", "path", "start_s", "end_s", "duration_s", "vector"])
        if not found:
            return None
        row = found[0]
        return IndexedClip(row["id"], row["path"], seconds_or_nan(row["start_s"]),
                           seconds_or_nan(row["end_s"]), seconds_or_nan(row["duration_s"]),
                           np.asarray(row["vector"], np.float32))  # fmt: skip

    def _by_id(self, clip_id, columns) -> list[dict]:
        table = self.latest()
        if table is None:
            return []
        return (table.search().where(f"id = {store.sql_string(clip_id)}").select(columns)
                .limit(1).to_arrow().to_pylist())  # fmt: skip

    def held(self, files: Sequence[VideoFile]) -> dict[str, tuple[set, bool]]:
        """file_id → (item keys of the clips the index holds, whether the file is whole),
        for those of `files` it holds anything of."""
        held: dict = {}
        # Looked for now: a writer asks before embedding (once per batch or file), and what
        # another writer committed a moment ago need not be embedded again.
        table = self.latest(fresh=True)
        if table is None:
            return held
        ids = [f.file_id for f in files]
        for i in range(0, len(ids), store.ID_BATCH):
            chunk = ", ".join(map(store.sql_string, ids[i : i + store.ID_BATCH]))
            try:
                rows = (table.search().where(f"file_id IN ({chunk})")
                        .select(["file_id", "path", "start_s", "end_s", "last_clip"])
                        .limit(None).to_arrow().to_pylist())  # fmt: skip
            except (OSError, RuntimeError, ValueError) as err:  # a damaged data file
                raise store.translate(err, self.uri, "reading which videos it holds") from err
            for row in rows:
                keys, complete = held.get(row["file_id"], (set(), False))
                keys.add(item_key(row["path"], row["start_s"], row["end_s"]))
                held[row["file_id"]] = (keys, complete or bool(row["last_clip"]))
        return held

    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of the inputs recorded as not embedded (latest first)."""
        return store.read_failures(self._connect())

    # ------------------------------------------------------------------- writes
    def check_settings(self, settings: dict, dim: int | None = None) -> None:
        """Raises `ValueError` if the index holds other settings or embeddings of another
        dimension.

        Args:
            settings: dict. Settings (`writer.index_settings`); those the index lacks, or
                this dict lacks, are not compared.
            dim: int or None. The embeddings' dimension. Defaults to None (not checked).
        """
        meta = self.meta if self._table is not None else {}
        if "num_frames" in meta and "engine" not in meta:  # written before engines: Keras
            meta = {**meta, "engine": INDEX_LEGACY_ENGINE}
        if "shots" in settings:
            check_shots(self.uri, meta, settings["shots"])
        for key in SETTINGS:
            if key in meta and key in settings and meta[key] != settings[key]:
                raise ValueError(f"{self.uri} was indexed with {key}={meta[key]!r}; got "
                                 f"{key}={settings[key]!r}: use the index's {key}, or another "
                                 "index for other settings")  # fmt: skip
        differ = fingerprint.model_difference(meta, settings)
        if differ:
            raise ValueError(f"{self.uri} holds embeddings of another model than this one: "
                             f"{differ}; use the model the index was built with, or another "
                             "index for this one")  # fmt: skip
        stored = meta.get("dim")
        if dim is not None and stored is not None and stored != dim:
            raise ValueError(f"{self.uri} holds {stored}-d embeddings; got {dim}-d ones (another "
                             "model): use the index's preset, or another index")  # fmt: skip

    def commit(self, rows: pa.Table | None = None, *, delete: str | None = None,
               settings: dict | None = None) -> None:  # fmt: skip
        """Deletes, then inserts, each one commit against the latest version (under the
        index's lock on a local folder; tried again if another writer's commit got in
        the way: `commits.py`).

        Args:
            rows: `pyarrow.Table` or None. Clips (`store.clip_table`), merged on `id`: a
                clip the table holds is left as it is. The first rows create the table.
                Defaults to None.
            delete: str or None. SQL for rows to delete first. Defaults to None.
            settings: dict or None. Recorded with the index when these rows create it.
                Defaults to None.
        """
        if rows is not None:
            dim = rows.schema.field("vector").type.list_size
            self.check_settings({}, dim)
            self._create(dim, settings or {})
        if self._table is None:
            return  # nothing to delete from
        if delete:
            self._write(lambda table: table.delete(delete))
        if rows is not None and len(rows):
            rows = rows.replace_schema_metadata(self._table.schema.metadata)
            self._write(lambda table: table.merge_insert("id").when_not_matched_insert_all()
                        .execute(rows))  # fmt: skip

    @property
    def attempts(self) -> commits.CommitAttempts:
        """How this handle's commits went: commits made, the tries they took (more than
        one where another writer's commit got in the way), the most for one commit."""
        return self._attempts

    def _write(self, write, action: str = "writing to it") -> None:
        """One commit, `write(lance_table)`, against the latest version under the lock,
        tried again on a conflict, counted in `attempts` (`commits.commit_latest`); the
        handle's first write gives a table made before the primary key its key."""
        try:
            if not self._keyed:
                commits.add_primary_key(self._table, self._folder, self.uri)
                self._keyed = True
            tries = commits.commit_latest(self._table, self._folder, write, self.uri, action)
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, self.uri, action, committing=True) from err
        self._attempts = self._attempts.plus(tries)

    def _create(self, dim, settings):
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
                )  # exist_ok: another process created it first, with these settings
        except ValueError as err:
            if "does not match" not in str(err):
                raise store.translate(err, self.uri, "creating it") from err
            # Another process created it first, recording other settings (or another
            # model's, or other notes): opened, then its settings compared as any index's.
            self._open(must_exist=True)
            self.check_settings(settings, dim)
        except (OSError, RuntimeError) as err:
            raise store.translate(err, self.uri, "creating it") from err
        self._check_schema()

    def mark_last_clips(self, ids: Sequence[str]) -> None:
        """Sets `last_clip` on these clips: their files are whole."""
        if not ids or self._table is None:
            return
        for i in range(0, len(ids), store.ID_BATCH):
            chunk = ", ".join(map(store.sql_string, ids[i : i + store.ID_BATCH]))
            self._write(lambda table, chunk=chunk: table.update(
                where=f"id IN ({chunk})", values={"last_clip": True}))  # fmt: skip

    def record_failures(self, failures: Sequence[tuple[str, str]]) -> None:
        """(path, reason) of inputs that could not be embedded, into the failures table."""
        commits.retried(lambda: store.record_failures(self._connect(), self._folder, failures)
                        or 1, self.uri, "recording the inputs it could not read")  # fmt: skip

    def forget_failures(self, paths: Sequence[str]) -> None:
        """These paths are no longer failures."""
        if paths:
            commits.retried(lambda: store.forget_failures(self._connect(), self._folder, paths)
                            or 1, self.uri, "forgetting inputs it now holds")  # fmt: skip

    def maintain(self, *, finishing: bool = True, compact: bool = False,
                 force: bool = False) -> bool:  # fmt: skip
        """The table's upkeep (`maintenance.py`): the vector index built past
        `ann_threshold` rows and kept up to date, small fragments compacted, versions
        replaced more than `keep_versions_s` ago deleted, each when due. One process at a
        time on a local folder: another one's pass is not waited for (but with `force` or
        `compact`). A failure (but with `force`) loses nothing, the rows are committed: it
        is logged.

        Args:
            finishing: bool. At the end of a run of writes: the vector index is brought
                up to date whatever it lacks; False between commits (past
                `constants.MAINTAIN_UNINDEXED_ROWS`). Defaults to True.
            compact: bool. Merge any small fragments (`IndexWriter.finish` after a long
                run of writes, whose table is then left as a fresh one; otherwise past
                `constants.MAINTAIN_SMALL_FRAGMENTS`). Defaults to False.
            force: bool. A pass whatever is due (`videoprism index --optimize`): every
                version that may go is found and deleted; errors are raised. Defaults to
                False.

        Returns:
            Whether a pass ran.
        """
        if self._table is None:
            return False
        wait = force or compact  # a run's end may wait for another's pass to end
        with store.locked(self._folder, store.MAINTENANCE_LOCK_FILE, wait=wait) as mine:
            return mine and maintenance.maintain(self, self._upkeep, finishing=finishing,
                                                 compact=compact, force=force)  # fmt: skip


def _refresh_seconds(uri: str, refresh_seconds: float | None) -> float:
    """`refresh_seconds` checked (a `ValueError` in its own name), None as the default for
    the store `uri` is on."""
    if refresh_seconds is None:
        return INDEX_REFRESH_SECONDS_LOCAL if store.is_local(uri) else INDEX_REFRESH_SECONDS
    number = isinstance(refresh_seconds, int | float) and not isinstance(refresh_seconds, bool)
    if not (number and math.isfinite(refresh_seconds) and refresh_seconds >= 0):
        raise ValueError("refresh_seconds must be a number of seconds >= 0 (0: every read) or "
                         f"None (the store's default). Received: {refresh_seconds!r}")  # fmt: skip
    return float(refresh_seconds)


def check_shots(uri: str, meta: dict, shots: bool, name: str = "shots=True") -> None:
    """Windows at shot cuts and windows at a fixed stride do not mix in one index (an
    index written before shots existed holds the latter): a `ValueError` naming the shots
    option as `name` (the CLI's `--shots`, Python's `shots=True`) otherwise.

    Args:
        uri: str. The index, as the message names it.
        meta: dict. The index's settings (`VideoIndex.meta`); empty: a new index.
        shots: bool. Whether the windows to write follow shots.
        name: str. The option, in the caller's words. Defaults to "shots=True".
    """
    if not meta or bool(meta.get("shots")) == bool(shots):
        return
    if shots:
        held = "windows at a fixed stride" if meta.get("clip_seconds") else "whole videos"
        raise ValueError(f"{uri} holds {held}, not windows at shot cuts; got {name}: leave "
                         f"{name} out to extend it, or use another index for shot "
                         "windows")  # fmt: skip
    raise ValueError(
        f"{uri} was built with {name} (windows at shot cuts); got windows at a "
        f"fixed stride: add {name} to extend it, or use another index"
    )
