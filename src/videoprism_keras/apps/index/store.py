"""The video index's storage: one LanceDB table of clips, its row layout and metadata, the
write lock, the failures table, and Lance's errors as the index's.

A LanceDB "database" is a folder (or an object-store prefix, `s3://…`, `gs://…`); the
index is its table `clips`. Every write is one Lance commit: a new version whose
manifest is written last and atomically, so a reader, or a process that starts after a
kill at any moment, sees the last committed version and nothing half-written.

Local folders are also locked (`flock` on `<index>/write.lock`) around each commit.
Lance retries conflicting commits itself, but its `merge_insert` checks the rows it
inserts against the version it started from: two processes that embed the same clip at
the same moment could both insert it (benchmarks/README.md, "Video index", has the
trials), and do not with the lock and a `checkout_latest` under it. Object stores have
no such lock: there the `id` column's primary-key metadata (`PRIMARY_KEY`) makes the
second of two commits inserting the same clip conflict, and Lance retries it against the
new version, where the clip is held (tests/test_object_store.py); what Lance still refuses
is tried again (`commits.py`; tests/test_many_writers.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...video.times import seconds_or_none
from ..identity import VideoFile, clip_id, identify
from ..object_store import is_uri, object_store_fault

if TYPE_CHECKING:
    import pyarrow as pa
    from lancedb import DBConnection
    from numpy.typing import ArrayLike

TABLE = "clips"
FAILURES_TABLE = "failures"  # beside the clips: (path, reason, time) of inputs not embedded
META_KEY = b"videoprism"
FORMAT = 1
LOCK_FILE = "write.lock"
MAINTENANCE_LOCK_FILE = "maintenance.lock"
ID_BATCH = 500  # ids (or files) per `IN (…)` query or delete predicate
# The `id` column is the table's (unenforced) primary key: Lance then records the keys a
# commit inserts, and of two commits inserting the same id the later one conflicts and is
# retried against the new version (inserting nothing). Without it, two writers on an
# object store (no lock there) could both insert a clip they embedded at the same time.
PRIMARY_KEY = {b"lance-schema:unenforced-primary-key:position": b"1"}

try:
    import fcntl
except ImportError:  # Windows: commits rely on Lance's own conflict handling
    fcntl = None


def schema(dim: int, meta: dict) -> pa.Schema:
    """The clips table's schema for `dim`-d vectors, `meta` in its metadata."""
    import pyarrow as pa

    fields = [
        # file_id@start-end (see identity.py): the primary key
        pa.field("id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("file_id", pa.string()),
        pa.field("path", pa.string()),  # resolved real path
        pa.field("start_s", pa.float64()),  # null for a whole video
        pa.field("end_s", pa.float64()),
        pa.field("duration_s", pa.float64()),  # the video's
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        # The file's last clip: with it in the table, the whole file is, and a later run
        # skips the file without decoding it.
        pa.field("last_clip", pa.bool_()),
        pa.field("vector", pa.list_(pa.float32(), dim)),  # L2-normalised
        pa.field("poster", pa.binary()),  # a small JPEG of the clip's middle frame
    ]
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta, default=str).encode()})


def normalise(vectors: ArrayLike) -> np.ndarray:
    """Vectors as the table stores them: float32, L2-normalised (so a dot product is the
    cosine similarity)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.sqrt((vectors * vectors).sum(axis=-1, keepdims=True) + 1e-12)


def identity_of(path: str | os.PathLike) -> VideoFile:
    """A file's identity; a name that is no file (e.g. an array's label) stands for itself
    (size and mtime -1)."""
    try:
        return identify(path)
    except OSError:
        return VideoFile(str(path), -1, -1)


def clip_table(files: Sequence[VideoFile], start_s: Sequence[float | None],
               end_s: Sequence[float | None], vectors: np.ndarray, last: Sequence[bool],
               posters: Sequence[bytes | None] | None = None,
               duration_s: Sequence[float | None] | None = None,
               meta: dict | None = None) -> pa.Table:  # fmt: skip
    """Clips as rows of the table, one per clip.

    Args:
        files: sequence of `VideoFile`. Each clip's file.
        start_s, end_s: sequences of float. Clip times in seconds; None or NaN for a
            whole video.
        vectors: (N, D) array. The embeddings, as stored (see `normalise`).
        last: sequence of bool. Whether each clip is its (whole) file's last.
        posters: sequence of bytes or None. JPEG posters. Defaults to None (none).
        duration_s: sequence of float or None. The videos' durations in seconds, None
            for unknown. Defaults to None (all unknown).
        meta: dict. The schema's metadata. Defaults to None (none: the commit gives the
            rows the table's own).
    """
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, np.float32)
    posters = list(posters) if posters is not None else [None] * len(files)
    duration_s = list(duration_s) if duration_s is not None else [None] * len(files)
    ids = [clip_id(f.file_id, s, e) for f, s, e in zip(files, start_s, end_s, strict=True)]
    return pa.table({
        "id": ids, "file_id": [f.file_id for f in files], "path": [f.path for f in files],
        "start_s": [seconds_or_none(s) for s in start_s],
        "end_s": [seconds_or_none(e) for e in end_s],
        "duration_s": [seconds_or_none(d) for d in duration_s],
        "size_bytes": [f.size for f in files],
        "mtime_ns": [f.mtime_ns for f in files], "last_clip": [bool(x) for x in last],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1]),
        "poster": pa.array(posters, pa.binary()),
    }, schema=schema(vectors.shape[1], meta or {}))  # fmt: skip


def failures_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field("path", pa.string(), nullable=False), ("reason", pa.string()),
                      ("time", pa.float64())])  # fmt: skip


def record_failures(db: DBConnection, folder: Path | None,
                    failures: Sequence[tuple[str, str]]) -> None:  # fmt: skip
    """(path, reason) pairs into the failures table: one row per path, its latest reason."""
    if not failures:
        return
    import pyarrow as pa

    data = pa.table({"path": [p for p, _ in failures], "reason": [r for _, r in failures],
                     "time": [time.time()] * len(failures)}, schema=failures_schema())  # fmt: skip
    data = data.group_by("path").aggregate([("reason", "max"), ("time", "max")]).rename_columns(
        ["path", "reason", "time"]).cast(failures_schema())  # fmt: skip
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        table = db.create_table(FAILURES_TABLE, schema=failures_schema(), exist_ok=True)
        table.merge_insert("path").when_matched_update_all().when_not_matched_insert_all().execute(
            data
        )


def forget_failures(db: DBConnection, folder: Path | None, paths: Sequence[str]) -> None:
    """Paths that are no longer failures."""
    if not paths:
        return
    try:
        table = db.open_table(FAILURES_TABLE)
    except (ValueError, FileNotFoundError):
        return
    with locked(folder):
        for i in range(0, len(paths), ID_BATCH):
            table.delete(f"path IN ({', '.join(map(sql_string, paths[i : i + ID_BATCH]))})")


def read_failures(db: DBConnection) -> list[tuple[str, str]]:
    """(path, reason) of the failures table, latest first; none without the table."""
    try:
        table = db.open_table(FAILURES_TABLE)
    except (ValueError, FileNotFoundError):
        return []
    rows = sorted(table.to_arrow().to_pylist(), key=lambda r: -r["time"])
    # Two writers without a shared lock (an object store) may both record one path.
    latest = {r["path"]: r["reason"] for r in reversed(rows)}
    return [(path, latest.pop(path)) for path in (r["path"] for r in rows) if path in latest]


def is_local(uri: str) -> bool:
    """A local folder: a file name, or a `file://` address (Lance's name for one)."""
    return not is_uri(uri) or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


class StoreError(ValueError):
    """An index that cannot be read or written, with what to do about it."""


class Unreachable(StoreError):
    """An index on an object store that cannot be reached (`reason`: the bucket, the
    credentials or the endpoint), with what to do about it."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


# Lance appends the Rust source location of an error: ", /rustc/<hash>/library/….rs:250:5".
_RUST_SOURCE = re.compile(r",?\s*/rustc/\S+$")


def translate(err: BaseException, uri: str, action: str,
              committing: bool = False) -> BaseException:  # fmt: skip
    """Lance's and the OS's errors as one line naming the index and the fix; `committing`:
    the error came from one commit of several (earlier batches' commits stand)."""
    if isinstance(err, StoreError):  # already one
        return err
    if not is_local(uri):
        reason = object_store_fault(str(err))
        if reason:
            done = ("this commit was not made; earlier commits stay" if committing
                    else "nothing was written")  # fmt: skip
            return Unreachable(f"cannot reach the index {uri} while {action}: {reason}; {done}. "
                               "Check the bucket name, the credentials and the "
                               "endpoint (--storage-option KEY=VALUE or the AWS_* environment "
                               "variables)", reason)  # fmt: skip
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    text = _RUST_SOURCE.sub("", text)  # where in Lance's sources: nothing for a user
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or "No space left" in text or "os error 28" in text:
        return OSError(errno.ENOSPC, f"the disk holding {uri} is full while {action}; the "
                       "index keeps its last committed version: free some space and run the "
                       "same command again to continue")  # fmt: skip
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in text:
        return PermissionError(errno.EACCES, f"cannot write to {uri} while {action} "
                               "(permission denied): choose another folder, or make this "
                               "one writable")  # fmt: skip
    return StoreError(f"{uri} could not be read as a video index while {action} ({text}): "
                      "it may be damaged; restore it from a copy, or index into a new "
                      "folder")  # fmt: skip


@contextlib.contextmanager
def locked(folder: Path | None, name: str = LOCK_FILE, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on `folder/name` (yields whether it was taken: with `wait=False`
    it is not when another process holds it). Without a local folder, nothing to lock."""
    if folder is None or fcntl is None:
        yield True
        return
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def has_committed_table(folder: Path) -> bool:
    """Whether `folder` holds a clips table with at least one committed version (a first
    commit killed half-way leaves data files and no manifest: no table)."""
    versions = folder / f"{TABLE}.lance" / "_versions"
    return versions.is_dir() and any(versions.glob("*.manifest"))


def lost_versions(folder: Path) -> bool:
    """Whether `folder`'s clips table was committed once and has lost its manifests (all
    of `clips.lance/_versions/*.manifest` deleted): its data is there but unreadable.

    A killed first commit leaves data files and no manifest too, but none of the traces
    of a commit that went through: another file in `_versions` (the manifests' folder is
    created as one is written; the latest-version hint follows it), a vector index
    (`_indices`), a second transaction, or the maintenance lock (taken only after a
    commit)."""
    table = folder / f"{TABLE}.lance"
    if not table.is_dir() or has_committed_table(folder):
        return False
    versions = table / "_versions"
    return ((versions.is_dir() and any(versions.iterdir())) or (table / "_indices").exists()
            or len(list((table / "_transactions").glob("*.txn"))) > 1
            or (folder / MAINTENANCE_LOCK_FILE).exists())  # fmt: skip


def versions_lost(uri: str, folder: Path) -> StoreError:
    """The error for an index whose manifests are gone: nothing is changed, and the way
    to recover is named."""
    table = folder / f"{TABLE}.lance"
    return StoreError(f"{uri} holds a clips table whose versions are gone (no "
                      f"{table / '_versions'}/*.manifest; its data files are still there): "
                      "nothing was changed. Restore the folder (or its _versions) from a "
                      f"copy, or move it aside (mv {folder} {folder}.damaged) and index into "
                      "a new folder")  # fmt: skip


def discard_uncommitted(folder: Path) -> None:
    """Removes what a killed first commit left (data, no manifest): nothing was committed.
    A table that was committed and lost its manifests is not removed: an error."""
    table = folder / f"{TABLE}.lance"
    if table.exists() and not has_committed_table(folder):
        if lost_versions(folder):
            raise versions_lost(str(folder), folder)
        shutil.rmtree(table)


def has_primary_key(schema: pa.Schema) -> bool:
    """Whether the table's `id` column is marked as its primary key (`PRIMARY_KEY`, or the
    older form of the same metadata)."""
    metadata = schema.field("id").metadata or {}
    return any(key.startswith(b"lance-schema:unenforced-primary-key") for key in metadata)
