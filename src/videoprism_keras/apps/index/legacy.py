"""The previous index format (`vectors.npy` + `index.json`, before LanceDB), converted in
place the first time it is opened: one commit makes the clips table, then the old files
are moved aside into `pre-lancedb/` (kept, not deleted).

A kill between the commit and the move leaves both: the table wins, and the old files
are moved on the next opening.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..identity import clip_id
from . import store

if TYPE_CHECKING:
    from lancedb import DBConnection

log = logging.getLogger(__name__)

LEGACY_FILES = ("index.json", "vectors.npy", "hnsw.faiss")
LEGACY_FOLDER = "pre-lancedb"


def is_legacy(folder: Path) -> bool:
    """Whether `folder` holds an index of the previous format not converted yet."""
    return (folder / "index.json").exists() and not store.has_committed_table(folder)


def has_leftovers(folder: Path) -> bool:
    """Whether the previous format's files are still beside a converted table."""
    return any((folder / name).exists() for name in LEGACY_FILES)


def read_legacy(folder: Path) -> tuple[dict, np.ndarray, list[dict]]:
    """The previous format (vectors.npy + index.json) → (meta, vectors, items)."""
    try:
        old = json.loads((folder / "index.json").read_text())
        vectors = np.load(folder / "vectors.npy")
        items = old["items"]
    except (OSError, ValueError, KeyError) as err:
        raise store.StoreError(f"{folder} holds an index of the previous format that cannot "
                               f"be read ({err}): restore it from a copy, or index into a new "
                               "folder") from err  # fmt: skip
    if len(items) != len(vectors):
        raise store.StoreError(f"{folder} holds an index of the previous format with "
                               f"{len(items)} items and {len(vectors)} vectors (a save was "
                               "interrupted): restore it from a copy, or index into a new "
                               "folder")  # fmt: skip
    meta = dict(old.get("meta") or {})
    meta["dim"] = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else old.get("dim")
    return meta, np.asarray(vectors, np.float32), items


def legacy_settings(items: list[dict]) -> dict:
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


def migrate(folder: Path, db: DBConnection, uri: str) -> None:
    """The previous format in `folder` → the clips table in `db`, in one commit, under the
    write lock; the old files are moved aside. `uri` names the index in messages."""
    with store.locked(folder):
        if store.has_committed_table(folder):  # another process converted it
            move_legacy(folder)
            return
        store.discard_uncommitted(folder)
        meta, vectors, items = read_legacy(folder)
        meta.update(legacy_settings(items))
        meta["format"], meta["converted_from"] = store.FORMAT, "vectors.npy + index.json"
        rows, seen = [], set()
        for item, vector in zip(items, vectors, strict=True):
            file = store.identity_of(item["path"])
            start_s, end_s = item["start_s"], item["end_s"]
            key = clip_id(file.file_id, start_s, end_s)
            if key in seen:  # the same file named two ways: one row
                continue
            seen.add(key)
            rows.append((file, start_s, end_s, vector))
        last = {}
        for i, (file, start_s, _, _) in enumerate(rows):  # the latest clip of a file
            if file.path not in last or (start_s or 0) >= (rows[last[file.path]][1] or 0):
                last[file.path] = i
        last_rows = set(last.values())
        dim = meta["dim"] or 1
        table = store.clip_table(
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            np.stack([r[3] for r in rows]) if rows else np.zeros((0, dim), np.float32),
            [i in last_rows for i in range(len(rows))], meta=meta,
        )  # fmt: skip
        try:
            db.create_table(store.TABLE, data=table)
        except (OSError, RuntimeError, ValueError) as err:
            raise store.translate(err, uri, "converting it") from err
        backup = move_legacy(folder)
    log.warning(f"videoprism: converted {uri} (the previous format, {len(items)} items) to "
                f"a LanceDB table of {len(rows)} clips; the old files are in {backup} "
                "(delete them once satisfied)")  # fmt: skip
