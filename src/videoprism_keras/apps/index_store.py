"""The video index's storage: one LanceDB table of clips, its metadata, commits, errors.

A LanceDB "database" is a folder (or an object-store prefix, `s3://…`, `gs://…`); the
index is its table `clips`. Every write is one Lance commit: a new version whose
manifest is written last and atomically, so a reader, or a process that starts after a
kill at any moment, sees the last committed version and nothing half-written.

Local folders are also locked (`flock` on `<index>/write.lock`) around each commit.
Lance retries conflicting commits itself, but its `merge_insert` checks the rows it
inserts against the version it started from: two processes that embed the same clip at
the same moment both insert it (measured: 2,250 distinct ids, 2,550-2,940 rows, in 2 of
3 trials of two writers inserting the same ids; 0 duplicates in 4 trials with the lock
and a `checkout_latest` under it). Object stores have no such lock: two writers there
may store a clip they both embedded at once twice (the vector-index search drops the copy).
"""

import contextlib
import errno
import itertools
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

TABLE = "clips"
FAILURES_TABLE = "failures"  # beside the clips: (path, reason, time) of inputs not embedded
META_KEY = b"videoprism"
FORMAT = 1
LOCK_FILE = "write.lock"
MAINTENANCE_LOCK_FILE = "maintenance.lock"
LEGACY_FILES = ("index.json", "vectors.npy", "hnsw.faiss")
LEGACY_FOLDER = "pre-lancedb"

try:
    import fcntl
except ImportError:  # Windows: commits rely on Lance's own conflict handling
    fcntl = None


def schema(dim: int, meta: dict):
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),  # file_id@start-end: see identity.py
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


def failures_schema():
    import pyarrow as pa

    return pa.schema([pa.field("path", pa.string(), nullable=False), ("reason", pa.string()),
                      ("time", pa.float64())])  # fmt: skip


def record_failures(db, folder: Path | None, failures):
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


def forget_failures(db, folder: Path | None, paths, batch: int):
    """Paths that are no longer failures (`batch` of them per delete)."""
    if not paths:
        return
    try:
        table = db.open_table(FAILURES_TABLE)
    except (ValueError, FileNotFoundError):
        return
    with locked(folder):
        for i in range(0, len(paths), batch):
            table.delete(f"path IN ({', '.join(map(sql_string, paths[i : i + batch]))})")


def read_failures(db) -> list[tuple[str, str]]:
    """(path, reason) of the failures table, latest first; none without the table."""
    try:
        table = db.open_table(FAILURES_TABLE)
    except (ValueError, FileNotFoundError):
        return []
    rows = sorted(table.to_arrow().to_pylist(), key=lambda r: -r["time"])
    return [(r["path"], r["reason"]) for r in rows]


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


class StoreError(ValueError):
    """An index that cannot be read or written, with what to do about it."""


def translate(err: BaseException, uri: str, action: str) -> BaseException:
    """Lance's and the OS's errors as one line naming the index and the fix."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
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
def locked(folder: Path | None, name: str = LOCK_FILE, wait: bool = True):
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


def discard_uncommitted(folder: Path):
    """Removes what a killed first commit left (data, no manifest): nothing was committed."""
    table = folder / f"{TABLE}.lance"
    if table.exists() and not has_committed_table(folder):
        shutil.rmtree(table)


def read_legacy(folder: Path):
    """The previous format (vectors.npy + index.json) → (meta, vectors, items)."""
    try:
        old = json.loads((folder / "index.json").read_text())
        vectors = np.load(folder / "vectors.npy")
        items = old["items"]
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{folder} holds an index of the previous format that cannot be "
                         f"read ({err}): restore it from a copy, or index into a new "
                         "folder") from err  # fmt: skip
    if len(items) != len(vectors):
        raise StoreError(f"{folder} holds an index of the previous format with {len(items)} "
                         f"items and {len(vectors)} vectors (a save was interrupted): restore "
                         "it from a copy, or index into a new folder")  # fmt: skip
    meta = dict(old.get("meta") or {})
    meta["dim"] = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else old.get("dim")
    return meta, np.asarray(vectors, np.float32), items


def legacy_settings(items) -> dict:
    """The clip settings an old index (which did not record them) was built with, when
    its clips say so unambiguously: whole videos only, or one clip length and stride."""
    starts = [it["start_s"] for it in items]
    if all(s is None for s in starts):
        return {"clip_seconds": None, "stride_seconds": None}
    if any(s is None for s in starts):
        return {}  # whole videos and clips: mixed settings, none recorded
    by_path: dict = {}
    for it in items:
        by_path.setdefault(it["path"], []).append((it["start_s"], it["end_s"]))
    lengths, strides = set(), set()
    for clips in by_path.values():
        clips.sort()
        lengths.update(round(e - s, 6) for s, e in clips[:-1])  # the last one may be shorter
        strides.update(round(b[0] - a[0], 6) for a, b in itertools.pairwise(clips))
    if len(lengths) == 1 and len(strides) <= 1:
        length = lengths.pop()
        return {"clip_seconds": length, "stride_seconds": strides.pop() if strides else length}
    return {}


def move_legacy(folder: Path) -> Path:
    """Moves the previous format's files into `folder/pre-lancedb/` (kept, not deleted)."""
    backup = folder / LEGACY_FOLDER
    backup.mkdir(exist_ok=True)
    for name in LEGACY_FILES:
        if (folder / name).exists():
            os.replace(folder / name, backup / name)
    return backup
