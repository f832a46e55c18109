"""Embeddings written to a file as they are computed, so that a long `embed` keeps what it
did when it stops, and continues from there (`resume=True`).

Each batch becomes a part file in `<output>.partial/`, written under a temporary name
and renamed, so a part is whole or absent whatever the moment the process dies. At the
end the parts are assembled into the output (.npz, .npy + .json, .parquet) one at a
time, so memory holds one batch, not the collection, and the folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from ..extras import require
from ..video.times import seconds_or_none
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
            format.
        settings: dict. What makes the embeddings comparable (kind, sampling, model),
            named as the caller names them (the CLI: by flag); a resumed run must match
            them.
        resume: bool. Continue the parts (or the finished output) of an earlier run
            with the same settings; otherwise whatever an earlier run left is replaced.
            Defaults to False.
    """

    def __init__(self, path: str | os.PathLike, settings: dict, resume: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix not in SUFFIXES:
            raise ValueError(f"unknown embedding file type {self.path.suffix!r}: use .npy, "
                             f".npz or .parquet. Received: {self.path}")  # fmt: skip
        if self.path.suffix == ".parquet":  # before the .partial folder, not at the end
            require(("pyarrow",), "a .parquet embeddings file", f"-o {self.path.name}")
        self.parts = self.path.with_name(self.path.name + ".partial")
        self.settings = {key: _plain(value) for key, value in settings.items()}
        self.resumed = 0
        self._done: set = set()
        if resume:
            self._resume()
        else:
            shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        self._write_json(self.parts / MANIFEST, {"settings": self.settings})
        self._count = len(self._part_files())

    def done(self, path: str | os.PathLike, start_s: float | None, end_s: float | None) -> bool:
        """Whether an earlier run already wrote this item (for `embed_batches(exclude=)`)."""
        return item_key(path, start_s, end_s) in self._done

    def resumed_items(self) -> frozenset:
        """The `item_key`s of the items an earlier run wrote (those `done` tells of)."""
        return frozenset(self._done)

    def _resume(self):
        if self.parts.is_dir() and (self.parts / MANIFEST).is_file():
            stored = json.loads((self.parts / MANIFEST).read_text())["settings"]
            self._check(stored, f"{self.parts} (an interrupted run)")
        elif self.path.is_file():  # a finished output: continue it with new videos
            done = Embeddings.load(self.path)
            stored = self._finished_settings(done)
            self._check(stored, str(self.path))
            shutil.rmtree(self.parts, ignore_errors=True)
            self.parts.mkdir(parents=True)
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

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.npz"))

    def _write_part(self, number: int, embeddings: Embeddings):
        target = self.parts / f"part-{number:06d}.npz"
        temporary = target.with_suffix(".tmp")
        with open(temporary, "wb") as f:
            np.savez(f, vectors=embeddings.vectors, paths=np.array(embeddings.paths, dtype=str),
                     start_s=embeddings.start_s, end_s=embeddings.end_s)  # fmt: skip
        os.replace(temporary, target)

    @staticmethod
    def _write_json(path: Path, data):
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)

    def write(self, batch: Batch | Embeddings) -> None:
        """One `embed_batches` batch (or any `Embeddings`), on disk when this returns."""
        embeddings = Embeddings(np.asarray(batch.vectors), list(map(str, batch.paths)),
                                batch.start_s, batch.end_s)  # fmt: skip
        self._write_part(self._count, embeddings)
        self._count += 1

    def finish(self, kind: str) -> tuple[Path, tuple]:
        """Assembles the parts into the output; returns it and the vectors' shape."""
        parts = self._part_files()
        if not parts:
            raise ValueError("no video could be embedded")
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
        temporary = self.path.with_name(self.path.name + ".tmp")
        if self.path.suffix == ".parquet":
            self._parquet(temporary, parts, paths, kind, shape)
        elif self.path.suffix == ".npz":
            with zipfile.ZipFile(temporary, "w", allowZip64=True) as archive:
                with archive.open("vectors.npy", "w", force_zip64=True) as f:
                    _stream_npy(f, parts, shape)
                for name, array in (("paths", np.array(paths, dtype=str)), ("start_s", start_s),
                                    ("end_s", end_s), ("kind", np.array(kind))):  # fmt: skip
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, array, allow_pickle=False)
        else:
            with open(temporary, "wb") as f:
                _stream_npy(f, parts, shape)
            sidecar = {"kind": kind, "shape": list(shape), "paths": paths,
                       "start_s": [seconds_or_none(t) for t in start_s],
                       "end_s": [seconds_or_none(t) for t in end_s]}  # fmt: skip
            self._write_json(self.path.with_suffix(".json"), sidecar)
        os.replace(temporary, self.path)
        shutil.rmtree(self.parts, ignore_errors=True)
        return self.path, shape

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
            Embeddings(np.zeros((0, *shape[1:]), np.float32), kind=kind).save(
                Path(str(target) + ".parquet")
            )
            os.replace(str(target) + ".parquet", target)


def _stream_npy(f, parts, shape):
    """A .npy of `shape`, float32, written from the parts one after the other."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": tuple(shape)}  # fmt: skip
    np.lib.format.write_array_header_2_0(f, header)
    for part in parts:
        vectors = np.load(part)["vectors"]
        if len(vectors):
            f.write(np.ascontiguousarray(vectors, np.float32).tobytes())


def _plain(value):
    """Settings as JSON keeps them (tuples as lists), so stored and given compare equal."""
    return json.loads(json.dumps(value))
