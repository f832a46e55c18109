"""Embeddings written to a file as they are computed, so that a long `embed` keeps what it
did when it stops, and continues from there (`resume=True`).

Each batch becomes a part file in `<output>.partial/`, written under a temporary name
and renamed (on an object store: one object, see `embed_store`), so a part is whole or
absent whatever the moment the process dies. At the end the parts are assembled into the
output (.npz, .npy + .json, .parquet) one at a time, so memory holds one batch, not the
collection, and the folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..extras import require
from ..video.times import seconds_or_none
from . import embed_store
from .embedding import Batch, Embeddings, item_key, times_of

SUFFIXES = (".npz", ".npy", ".parquet")
MANIFEST = "manifest.json"
# Outputs record their settings under the CLI flags of the day they were written (a format:
# kept); a message names the flag as it is spelled now.
FLAG_NAMES = {"--frames": "--num-frames"}


class EmbeddingWriter:
    """Writes batches of embeddings to `path` (see the module docstring).

    Args:
        path: str or path. The output file; its suffix (.npz, .npy, .parquet) is the
            format. An object-store URI (`s3://bucket/emb.npz`, `gs://…`) works too.
        settings: dict. What makes the embeddings comparable (kind, sampling, model),
            named as the caller names them (the CLI: by flag); a resumed run must match
            them.
        resume: bool. Continue the parts (or the finished output) of an earlier run
            with the same settings; otherwise whatever an earlier run left is replaced.
            Defaults to False.
        storage_options: dict or None. For an `s3://` path: LanceDB's storage option
            names (aws_access_key_id, aws_secret_access_key, aws_endpoint, region,
            allow_http, ...), else the AWS_* environment. Defaults to None.
    """

    def __init__(self, path: str | os.PathLike, settings: dict, resume: bool = False,
                 storage_options: dict | None = None) -> None:  # fmt: skip
        suffix = Path(str(path)).suffix
        if suffix not in SUFFIXES:
            raise ValueError(f"unknown embedding file type {suffix!r}: use .npy, "
                             f".npz or .parquet. Received: {path}")  # fmt: skip
        if suffix == ".parquet":  # before the .partial folder, not at the end
            require(("pyarrow",), "a .parquet embeddings file", f"-o {os.path.basename(path)}")
        self._place = embed_store.place(path, storage_options)
        self.path = self._place.path  # a Path, or the URI of an object-store output
        self.parts = self._place.parts  # `<output>.partial`: a Path, or a URI
        self.settings = {key: _plain(value) for key, value in settings.items()}
        self.resumed = 0
        self._done: set = set()
        if resume:
            self._resume()
        else:
            self._place.clear_parts()
        self._place.make_parts()
        self._place.put(MANIFEST, _json_writer({"settings": self.settings}))
        self._count = len(self._place.part_names())

    def done(self, path: str | os.PathLike, start_s: float | None, end_s: float | None) -> bool:
        """Whether an earlier run already wrote this item (for `embed_batches(exclude=)`)."""
        return item_key(path, start_s, end_s) in self._done

    def resumed_items(self) -> frozenset:
        """The `item_key`s of the items an earlier run wrote (those `done` tells of)."""
        return frozenset(self._done)

    def _resume(self):
        if self._place.has_parts(MANIFEST):
            stored = json.loads(self._place.read_text(MANIFEST))["settings"]
            self._check(stored, f"{self._place.parts} (an interrupted run)")
        elif self._place.has_output():  # a finished output: continue it with new videos
            done = self._place.load_output()
            stored = self._finished_settings(done)
            self._check(stored, str(self.path))
            self._place.clear_parts()
            self._place.make_parts()
            self._write_part(0, done)
        for part in self._part_files():
            data = np.load(part)
            times = zip(data["paths"], *times_of(data), strict=True)
            self._done.update(item_key(*item) for item in times)
        self.resumed = len(self._done)

    @staticmethod
    def _finished_settings(done: Embeddings) -> dict:
        # A finished file keeps its kind, not the sampling: the kind is what is checked.
        return {"--kind": done.kind}

    def _check(self, stored: dict, where: str):
        for key, value in self.settings.items():
            if key in stored and stored[key] != value:
                flag = FLAG_NAMES.get(key, key)
                raise ValueError(f"{where} was embedded with {flag} {stored[key]}, not {value}: "
                                 f"give {flag} {stored[key]}, or leave out --resume to start "
                                 "over")  # fmt: skip

    def _part_files(self) -> Iterator:
        """The parts, in order, each opened when reached (memory holds one): paths (local)
        or in-memory copies (object store) that `np.load` reads."""
        return iter(_Parts(self._place, self._place.part_names()))

    def _write_part(self, number: int, embeddings: Embeddings):
        def write(f):
            np.savez(f, vectors=embeddings.vectors, paths=np.array(embeddings.paths, dtype=str),
                     start_s=embeddings.start_s, end_s=embeddings.end_s)  # fmt: skip

        self._place.put(f"part-{number:06d}.npz", write)

    def write(self, batch: Batch | Embeddings) -> None:
        """One `embed_batches` batch (or any `Embeddings`), on disk when this returns."""
        embeddings = Embeddings(np.asarray(batch.vectors), list(map(str, batch.paths)),
                                batch.start_s, batch.end_s)  # fmt: skip
        self._write_part(self._count, embeddings)
        self._count += 1

    def finish(self, kind: str) -> tuple[Path | str, tuple]:
        """Assembles the parts into the output; returns it (a path, or the URI of an
        object-store output) and the vectors' shape."""
        names = self._place.part_names()
        if not names:
            raise ValueError("no video could be embedded")
        parts = _Parts(self._place, names)
        rows, trailing, paths, start_s, end_s = 0, None, [], [], []
        for part in parts:  # the small columns only: names and times
            data = np.load(part)
            vectors = data["vectors"]
            rows += len(vectors)
            if len(vectors) and trailing is None:
                trailing = vectors.shape[1:]
            paths += data["paths"].tolist()
            start, end = times_of(data)
            start_s.append(start)
            end_s.append(end)
        shape = (rows, *(trailing or (0,)))
        start_s, end_s = np.concatenate(start_s), np.concatenate(end_s)
        suffix = self._place.suffix
        if suffix == ".npy":  # the sidecar first: the .npy appearing means both are there
            sidecar = {"kind": kind, "shape": list(shape), "paths": paths,
                       "start_s": [seconds_or_none(t) for t in start_s],
                       "end_s": [seconds_or_none(t) for t in end_s]}  # fmt: skip
            self._place.put_sidecar(json.dumps(sidecar))
        with self._place.output() as temporary:
            self._assemble(temporary, suffix, parts, paths, start_s, end_s, kind, shape)
        self._place.clear_parts()
        return self.path, shape

    def _assemble(self, temporary, suffix, parts, paths, start_s, end_s, kind, shape):
        if suffix == ".parquet":
            self._parquet(temporary, parts, paths, kind, shape)
        elif suffix == ".npz":
            with zipfile.ZipFile(temporary, "w", allowZip64=True) as archive:
                with archive.open("vectors.npy", "w", force_zip64=True) as f:
                    _stream_npy(f, parts, shape)
                for name, array in (("paths", np.array(paths, dtype=str)), ("start_s", start_s),
                                    ("end_s", end_s), ("kind", np.array(kind))):  # fmt: skip
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, array, allow_pickle=False)
        elif isinstance(temporary, Path):
            with open(temporary, "wb") as f:
                _stream_npy(f, parts, shape)
        else:
            _stream_npy(temporary, parts, shape)

    @staticmethod
    def _parquet(target, parts, paths, kind, shape):
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = {b"kind": kind.encode(), b"shape": str(tuple(shape[1:])).encode()}
        writer = None
        try:
            for part in parts:
                data = np.load(part)
                flat = data["vectors"].reshape(len(data["vectors"]), -1)
                if not len(flat):
                    continue
                column = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
                start_s, end_s = times_of(data)
                table = pa.table({"path": data["paths"].tolist(), "start_s": start_s,
                                  "end_s": end_s, "embedding": column})  # fmt: skip
                table = table.replace_schema_metadata(meta)
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # nothing to write: an empty file with the columns
            with tempfile.TemporaryDirectory() as folder:
                empty = Path(folder) / "empty.parquet"
                Embeddings(np.zeros((0, *shape[1:]), np.float32), kind=kind).save(empty)
                if isinstance(target, Path):
                    shutil.copyfile(empty, target)
                else:
                    target.write(empty.read_bytes())


def _stream_npy(f, parts, shape):
    """A .npy of `shape`, float32, written from the parts one after the other."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": tuple(shape)}  # fmt: skip
    np.lib.format.write_array_header_2_0(f, header)
    for part in parts:
        vectors = np.load(part)["vectors"]
        if len(vectors):
            f.write(np.ascontiguousarray(vectors, np.float32).tobytes())


class _Parts:
    """The parts in order, each read when reached (assembly goes over them twice)."""

    def __init__(self, where, names):
        self._place, self._names = where, names

    def __iter__(self):
        return (self._place.open_part(name) for name in self._names)


def _json_writer(data):
    text = json.dumps(data).encode()
    return lambda f: f.write(text)


def _plain(value):
    """Settings as JSON keeps them (tuples as lists), so stored and given compare equal."""
    return json.loads(json.dumps(value))
