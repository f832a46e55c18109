"""The embeddings of `videoprism eval`, cached in LanceDB so that a re-run, or another task
on the same data, embeds nothing again.

    key = model_key(model, source="lvt-base", dtype="float32")
    cache = EmbeddingCache(None, key, "msrvtt-1k-a")  # $VIDEOPRISM_EVAL_CACHE or ~/.cache/…
    videos = cache.videos(model, dataset.clips, num_frames=16)  # (N, D), in clip order
    texts = cache.texts(model, tokenizer, dataset.captions)

The cache folder is one LanceDB database; each (model, dataset, kind, sampling[, token
grid]) has a table of its own (`table_name`), and the texts of a model (and tokenizer) one
more, whatever the dataset: a row per clip (or text), keyed by `Clip.key` with its file's
identity (`row_key`; or the text) in the `id` column, the table's primary key. Clips are
embedded in batches, and each batch is one commit (a `merge_insert` on the key, through
the index's commit code: `index/commits.py`), so a run killed midway keeps every batch it
committed, the next one embeds only the rest, and a clip embedded twice (two runs at once)
is stored once. The small fragments of many commits are merged as the video index merges
its own (`index/maintenance.py`).

Clips are decoded by the project's video code (`video.api`: `sample` for a whole video,
`load_clip` for a span) as uint8 frames, made model input as the Ray pipeline makes it
(`as_model_input`, bit for bit the float frames), and embedded by the same compiled
`Encoder`; `ray` sends the missing clips to Ray instead (`cache_clips.py` does both).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...constants import (
    EVAL_CACHE_ENV,
    EVAL_CACHE_FOLDER,
    EVAL_CACHE_FORMAT,
    EVAL_CACHE_KINDS,
    EVAL_CACHE_READ_BYTES,
    EVAL_MODEL_KEY_DIGITS,
    INDEX_KEEP_VERSIONS_SECONDS,
    MAINTAIN_EVERY_COMMITS,
)
from ...video.options import Sampling
from ..index import commits, maintenance, store
from ..index.fingerprint import NOT_IDENTITY, weights_sha256
from .cache_clips import embedded_batches, ray_address, ray_batches

if TYPE_CHECKING:
    import pyarrow as pa

    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from ...tokenizer import VideoPrismTokenizer
    from .datasets import Clip

__all__ = ["CachedRows", "CachedVideos", "EmbeddingCache", "model_key", "pool_tokens", "row_key"]

# Why a clip whose embedding has a NaN or an infinity fails rather than being cached: a
# bad run (a broken build, an overflow) must not poison the cache for good.
NON_FINITE = "the model returned NaN/inf"


@dataclass
class CachedVideos:
    """What `EmbeddingCache.videos` returns.

    Attributes:
        vectors: array. The rows of the clips with `ok` True, in clip order: (N, D)
            float32 for kind "video", (N, T, P, D) float16 for kind "features".
        ok: (len(clips),) bool array. Whether each clip has its row.
            Empty when `videos` was called with `read=False`.
        ok: (len(clips),) bool array. Whether each clip has its row.
        failures: list of (path, reason). The clips that could not be read (or whose
            embedding was not finite: `NON_FINITE`).
        embedded: int. Clips embedded in this call (the others came from the cache).
        rows: `CachedRows` or None. With `read=False`: the same rows, read a batch at a
            time.
    """

    vectors: np.ndarray
    ok: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0
    rows: CachedRows | None = None


def model_key(model: VideoPrismBackbone, *, source: str, dtype: str,
              lora: Sequence[str | os.PathLike] = (), engine: str = "keras") -> str:  # fmt: skip
    """A short, stable name of what a model embeds to: a hash of its weights (the index's
    fingerprint, `index/fingerprint.py`), its configuration where it shapes embeddings
    (the soft cap, the layers…), the dtype, the engine and the LoRA adapters (each file's
    bytes).

    Args:
        model: `VideoPrismBackbone`. The model, loaded (adapters applied).
        source: str. Its preset name or path. Not hashed: the weights name the model, so
            the same weights by a name or a path share their cache.
        dtype: str. The compute dtype ("float32", "bfloat16", "int8").
        lora: sequence of paths. The adapters applied, in order. Defaults to ().
        engine: str. What runs the model ("keras", "openvino", "onnxruntime"): each
            computes its own approximation of the same model. Defaults to "keras" (not
            hashed: the keys of caches written before engines stay valid).

    Returns:
        `EVAL_MODEL_KEY_DIGITS` hex digits.
    """
    del source  # the weights are hashed, not where they came from
    digest = hashlib.sha256(weights_sha256(model).encode())
    try:
        config = json.loads(json.dumps(model.get_config(), default=str))
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        config = {}
    config = {k: v for k, v in config.items() if k not in NOT_IDENTITY}
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(f"\ndtype={dtype}\n".encode())
    if engine != "keras":
        digest.update(f"engine={engine}\n".encode())
    for adapter in lora:
        digest.update(b"lora\n" + _file_digest(adapter))
    return digest.hexdigest()[:EVAL_MODEL_KEY_DIGITS]


def _file_digest(path: str | os.PathLike) -> bytes:
    if not os.path.isfile(path):  # a name the caller resolves: the name is what is known
        return os.fspath(path).encode()
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def row_key(clip: Clip) -> str:
    """A clip's key in the cache: `Clip.key` and its file's identity (real path, size,
    modification time: `identity.py`), so that a video replaced at the same path (copied
    over, re-encoded) is embedded again rather than read back stale."""
    return f"{clip.key}@{store.identity_of(clip.path).file_id}"


def pool_tokens(features: np.ndarray, grid: int) -> np.ndarray:
    """(B, T, P, D) token features → (B, T, grid², D): each frame's P patches (a square
    grid of side √P) averaged over `grid` × `grid` cells (cells of unequal sizes where
    `grid` does not divide the side, as an adaptive average pooling cuts them)."""
    batch, frames, patches, dim = features.shape
    side = round(patches**0.5)
    if side * side != patches or not 1 <= grid <= side:
        raise ValueError(f"token_grid must be between 1 and the frame's patch grid side "
                         f"({side} for {patches} patches per frame). Received: "
                         f"token_grid={grid}")  # fmt: skip
    square = features.reshape(batch, frames, side, side, dim).astype(np.float32)
    edges = [(i * side // grid, -(-(i + 1) * side // grid)) for i in range(grid)]
    cells = [square[:, :, r0:r1, c0:c1].mean(axis=(2, 3)) for r0, r1 in edges for c0, c1 in edges]
    return np.stack(cells, axis=2)


def tokenizer_key(tokenizer: VideoPrismTokenizer) -> str:
    """A short hash of what makes a tokenizer's token ids: its SentencePiece model and
    settings (the texts' table is per model and tokenizer)."""
    settings = {name: getattr(tokenizer, name, None)
                for name in ("max_length", "canonicalize", "add_bos", "add_eos")}  # fmt: skip
    digest = hashlib.sha256(getattr(tokenizer, "proto", b"") or b"")
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:8]


def cache_folder(folder: str | os.PathLike | None) -> str:
    """The cache's folder (or URI): `folder`, else $VIDEOPRISM_EVAL_CACHE, else
    ~/.cache/videoprism/eval."""
    if folder is None:
        folder = os.environ.get(EVAL_CACHE_ENV) or os.path.expanduser(EVAL_CACHE_FOLDER)
    return os.fspath(folder)


def table_name(model_key: str, dataset: str, kind: str, sampling: Sampling,
               token_grid: int | None = None) -> str:  # fmt: skip
    """The table of one (model, dataset, kind, sampling[, token grid]) in the cache's
    format (`EVAL_CACHE_FORMAT`: an older format's rows are not served): the dataset's name
    as LanceDB's table names allow, and a hash of it (names that read alike stay apart)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[:60]
    tag = hashlib.sha256(dataset.encode()).hexdigest()[:8]
    height, width = sampling.size
    name = (f"{model_key}-f{EVAL_CACHE_FORMAT}-{slug}-{tag}-{kind}-"
            f"{sampling.num_frames}x{height}x{width}")  # fmt: skip
    return name + (f"-g{token_grid}" if token_grid else "")


class _Table:
    """One table of the cache: its rows' keys, commits of batches, reads by key, and the
    index's upkeep (`index/maintenance.py`: the small fragments of many commits merged,
    old versions deleted; no vector index, the cache is read by key)."""

    ann_threshold = sys.maxsize  # never a vector index
    keep_versions_s = INDEX_KEEP_VERSIONS_SECONDS

    def __init__(self, db: Any, uri: str, lock: Path | None, name: str, meta: dict):
        self.db, self.lock, self.name, self.meta = db, lock, name, meta
        self.uri = f"{uri} (table {name})"  # as errors and the upkeep's log name it
        self.upkeep, self.commits = maintenance.Upkeep(), 0
        self.table = None
        try:
            self.table = db.open_table(name)
        except (ValueError, FileNotFoundError):
            pass  # created at the first commit

    def keys(self) -> set[str]:
        """The keys the table holds, at its latest version."""
        if self.table is None:
            return set()
        self.table.checkout_latest()
        rows = self.table.search().select(["id"]).limit(None).to_arrow()
        return set(rows["id"].to_pylist())

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> list[str]:
        """One commit: these rows, those the table holds left as they are; rows with a NaN
        or an infinity are not committed (their keys are returned)."""
        finite = np.isfinite(np.asarray(vectors).reshape(len(keys), -1)).all(axis=1)
        dropped = [key for key, good in zip(keys, finite, strict=True) if not good]
        if dropped:
            keys = [key for key, good in zip(keys, finite, strict=True) if good]
            vectors = np.asarray(vectors)[finite]
        if not keys:
            return dropped
        rows = self._rows(keys, vectors)
        if self.table is None:
            if self.lock is not None:
                self.lock.mkdir(parents=True, exist_ok=True)
            with store.locked(self.lock):
                self.table = self.db.create_table(self.name, schema=rows.schema, exist_ok=True)
            commits.add_primary_key(self.table, self.lock, self.uri)
        rows = rows.replace_schema_metadata(self.table.schema.metadata)
        commits.commit_latest(
            self.table, self.lock,
            lambda table: table.merge_insert("id").when_not_matched_insert_all().execute(rows),
            self.uri, "caching embeddings in it",
        )  # fmt: skip
        self.commits += 1
        if self.commits % MAINTAIN_EVERY_COMMITS == 0:
            self.maintain(finishing=False)
        return dropped

    def latest(self, *, fresh: bool = False) -> Any:
        """The LanceDB table at its latest version (`maintenance.Maintained`)."""
        self.table.checkout_latest()
        return self.table

    def maintain(self, *, finishing: bool = True) -> None:
        """A pass if one is due (one process at a time; another's is not waited for but
        at a run's end); after a run of many commits, every small fragment merged."""
        if self.table is None or not self.commits:  # nothing written: a read-only cache reads
            return
        compact = finishing and self.commits >= MAINTAIN_EVERY_COMMITS
        with store.locked(self.lock, store.MAINTENANCE_LOCK_FILE, wait=compact) as mine:
            if mine:
                maintenance.maintain(self, self.upkeep, finishing=finishing, compact=compact,
                                     force=False)  # fmt: skip

    def _rows(self, keys: Sequence[str], vectors: np.ndarray) -> pa.Table:
        import pyarrow as pa

        flat = np.ascontiguousarray(vectors).reshape(len(keys), -1)
        meta = {**self.meta, "shape": list(vectors.shape[1:]), "dtype": str(vectors.dtype)}
        schema = pa.schema([
            pa.field("id", pa.string(), nullable=False, metadata=store.PRIMARY_KEY),
            pa.field("vector", pa.list_(pa.from_numpy_dtype(flat.dtype), flat.shape[1])),
        ], metadata={store.META_KEY: json.dumps(meta).encode()})  # fmt: skip
        column = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
        return pa.table({"id": list(keys), "vector": column}, schema=schema)

    def read(self, keys: Sequence[str]) -> np.ndarray:
        """The rows of `keys` (all held), in that order, into one array filled chunk by
        chunk: the rows are never all held twice."""
        meta = json.loads(self.table.schema.metadata[store.META_KEY])
        out = np.empty((len(keys), *meta["shape"]), meta["dtype"])
        where: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            where.setdefault(key, []).append(i)
        wanted = list(where)
        # Rows per query: the index's batch of ids, fewer where they are large (features):
        # one query's rows are held twice (Arrow's and numpy's) while they are copied in.
        row_bytes = out[:1].nbytes or 1
        step = max(1, min(store.ID_BATCH, EVAL_CACHE_READ_BYTES // row_bytes))
        for i in range(0, len(wanted), step):
            chunk = ", ".join(map(store.sql_string, wanted[i : i + step]))
            rows = (self.table.search().where(f"id IN ({chunk})").select(["id", "vector"])
                    .limit(None).to_arrow())  # fmt: skip
            values = np.asarray(rows["vector"].combine_chunks().flatten())
            values = values.reshape(len(rows), *meta["shape"])
            for key, row in zip(rows["id"].to_pylist(), values, strict=True):
                out[where[key]] = row
        return out

    def reader(self, keys: Sequence[str]) -> CachedRows:
        """The rows of `keys` (all held), to be read a batch at a time (`CachedRows`)."""
        self.table.checkout_latest()
        pinned = self.db.open_table(self.name)  # its own handle: this one moves on
        pinned.checkout(self.table.version)
        return CachedRows(pinned, keys)


class CachedRows:
    """Rows of a cache table, by key, read a batch at a time (so that what does not fit in
    memory, a training set's token features, never has to): a sequence whose item `i` is
    key `i`'s row. The rows are those of the table's version when it was made: a commit or
    a merge of fragments meanwhile does not move them.

    Args:
        table: a LanceDB table, checked out at one version.
        keys: sequence of str. The rows' keys (all held), in the order they are read.
    """

    def __init__(self, table: Any, keys: Sequence[str]):
        self._table = table
        meta = json.loads(table.schema.metadata[store.META_KEY])
        self.row_shape, self.dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
        ids = table.search().select(["id"]).with_row_id(True).limit(None).to_arrow()
        where = dict(zip(ids["id"].to_pylist(), ids["_rowid"].to_pylist(), strict=True))
        self._row_ids = np.array([where[key] for key in keys], np.uint64)

    def __len__(self) -> int:
        return len(self._row_ids)

    def __getitem__(self, indices: Any) -> np.ndarray:
        """Rows as numpy indexes an array's first axis (an int, a slice, positions)."""
        at = np.arange(len(self))[indices]
        return self.take(at) if np.ndim(at) else self.take([at])[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """(N, *one row's shape)."""
        return (len(self), *self.row_shape)

    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows at these positions, in that order (a position may repeat).

        Args:
            indices: sequence of int. Positions in `keys`.
        """
        wanted = self._row_ids[np.asarray(indices, np.int64)]
        out = np.empty((len(wanted), *self.row_shape), self.dtype)
        where: dict[int, list[int]] = {}
        for i, row_id in enumerate(wanted.tolist()):
            where.setdefault(row_id, []).append(i)
        row_bytes = out[:1].nbytes or 1
        step = max(1, min(store.ID_BATCH, EVAL_CACHE_READ_BYTES // row_bytes))
        unique = list(where)
        for start in range(0, len(unique), step):  # the rows come back in the table's order
            got = (self._table.take_row_ids(unique[start : start + step]).with_row_id()
                   .select(["vector"]).to_arrow())  # fmt: skip
            values = np.asarray(got["vector"].combine_chunks().flatten())
            values = values.reshape(len(got), *self.row_shape)
            for row_id, row in zip(got["_rowid"].to_pylist(), values, strict=True):
                out[where[row_id]] = row
        return out

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """The rows in order, `size` at a time.

        Args:
            size: int. Rows per batch.
        """
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))


class EmbeddingCache:
    """The embeddings of one model on one dataset, computed once (see the module).

    Args:
        folder: str, path or None. The cache (a folder, or a URI LanceDB takes). None:
            $VIDEOPRISM_EVAL_CACHE, else ~/.cache/videoprism/eval.
        model_key: str. The model's `model_key`.
        dataset: str. The dataset's name (`Dataset.name`).
    """

    def __init__(self, folder: str | os.PathLike | None, model_key: str, dataset: str):
        import lancedb

        self.uri = cache_folder(folder)
        self.model_key, self.dataset = str(model_key), str(dataset)
        local = store.is_local(self.uri)
        self._lock = store.local_path(self.uri) if local else None
        if self._lock is not None and self._lock.exists() and not self._lock.is_dir():
            raise ValueError(f"the embedding cache must be a folder; {self.uri} is a file. "
                             f"Received: folder={self.uri!r}")  # fmt: skip
        self._db = lancedb.connect(self.uri)

    def table(self, name: str, meta: dict) -> _Table:
        """The cache's table `name` (created at its first commit, recording `meta`)."""
        return _Table(self._db, self.uri, self._lock, name, meta)

    def videos(self, model: VideoPrismBackbone, clips: Sequence[Clip], *,
               kind: str = "video", num_frames: int | None = None,
               size: int | Sequence[int] | None = None, batch_size: int = 4,
               token_grid: int | None = None, ray: bool | str | None = None,
               progress: bool = True, encoder: Encoder | None = None,
               read: bool = True) -> CachedVideos:  # fmt: skip
        """The clips' embeddings: those the cache holds read back, the others embedded
        (in batches, each committed as it is done) and read back. A clip whose embedding
        holds a NaN or an infinity is not cached: it fails (`NON_FINITE`).

        Args:
            model: `VideoPrismBackbone`. The model `model_key` names.
            clips: sequence of `Clip`. What to embed (a clip named twice is embedded once).
            kind: str. "video" ((N, D) pooled, normalised, float32) or "features" ((N, T,
                P, D) token features, float16). Defaults to "video".
            num_frames: int or None. Frames per clip. Defaults to None (the model's).
            size: int, (height, width) or None. Frame size. Defaults to None (the model's).
            batch_size: int. Clips per model call and per commit. Defaults to 4.
            token_grid: int or None. With kind "features": each frame's patches averaged
                to a `token_grid` × `token_grid` grid (P = token_grid²). Defaults to None.
            ray: None, True or str. None: embed here; True (or "local"): on a new local
                Ray instance (or this process's session); an address ("auto",
                "host:port", "ray://…"): on that cluster. Defaults to None.
            progress: bool. A progress bar over the clips (cached ones done at the
                start). Defaults to True.
            encoder: `Encoder` or None. The compiled model calls; with `ray`, its engine
                and precision are what the actors run (an engine's artefact built once,
                by this process). Defaults to None (a new one; with `ray`, Keras).
            read: bool. Read every row into `vectors`; False: `vectors` is empty and
                `rows` reads them a batch at a time (token features of a large set, which
                need not fit in memory). Defaults to True.

        Returns:
            `CachedVideos`.
        """
        _check_videos(kind, token_grid, batch_size, ray)
        sampling = Sampling.for_model(model, num_frames, size)
        if token_grid is not None:  # checked against the model's patch grid before any work
            side = sampling.size[0] // getattr(model, "patch_size", 1)
            pool_tokens(np.zeros((1, 1, side * side, 1)), token_grid)
        meta = {"model_key": self.model_key, "dataset": self.dataset, "kind": kind,
                "num_frames": sampling.num_frames, "size": list(sampling.size),
                "token_grid": token_grid, "format": EVAL_CACHE_FORMAT}  # fmt: skip
        table = self.table(table_name(self.model_key, self.dataset, kind, sampling, token_grid),
                           meta)  # fmt: skip
        rows = {clip.key: row_key(clip) for clip in clips}  # each clip once
        paths = {clip.key: clip.path for clip in clips}
        held = table.keys()
        todo, seen = [], set(held)  # each clip the cache lacks, once
        for clip in clips:
            if rows[clip.key] not in seen:
                seen.add(rows[clip.key])
                todo.append(clip)
        failures: list[tuple[str, str]] = []
        wanted = len(rows)
        from ...progress import progress_bar

        bar = progress_bar(progress, wanted, desc=f"embedding {self.dataset}")
        bar.update(wanted - len(todo))  # the cached clips: done at the start
        embedded, post = 0, _post(kind, token_grid)
        batches: Iterator = iter(())
        try:
            if todo and ray is None:
                batches = embedded_batches(model, todo, sampling, batch_size, kind, encoder,
                                           failures)  # fmt: skip
            elif todo:
                batches = ray_batches(model, todo, sampling, batch_size, ray, kind, failures,
                                      encoder)  # fmt: skip
            for keys, vectors in batches:
                dropped = set(table.add([rows[key] for key in keys], post(vectors)))
                failures += [(paths[key], NON_FINITE) for key in keys if rows[key] in dropped]
                embedded += len(keys) - len(dropped)
                bar.total = wanted - len(failures)  # what cannot be read is not to come
                bar.update(len(keys))
        finally:
            bar.close()
        table.maintain()  # not on an error or Ctrl-C: the next run's end does it
        now = table.keys() if todo else held
        ok = np.array([rows[clip.key] in now for clip in clips], bool)
        keys = [rows[clip.key] for clip, good in zip(clips, ok, strict=True) if good]
        if table.table is None:
            return CachedVideos(np.zeros((0, 0), np.float32), ok, failures, embedded)
        if not read:
            reader = table.reader(keys)
            return CachedVideos(np.zeros((0, *reader.row_shape), reader.dtype), ok, failures,
                                embedded, reader)  # fmt: skip
        return CachedVideos(table.read(keys), ok, failures, embedded)

    def texts(self, model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer,
              texts: Sequence[str], *, batch_size: int = 64, progress: bool = True,
              encoder: Encoder | None = None) -> np.ndarray:  # fmt: skip
        """The texts' embeddings ((N, D) float32, normalised, in order): those the cache
        holds for this model (whatever the dataset) read back, the others embedded and
        committed batch by batch.

        Args:
            model: `VideoPrismBackbone`. A multimodal (LvT) one.
            tokenizer: `VideoPrismTokenizer`. Its tokenizer.
            texts: sequence of str. Captions, prompts.
            batch_size: int. Texts per model call and commit. Defaults to 64.
            progress: bool. A progress bar. Defaults to True.
            encoder: `Encoder` or None. The compiled model calls. Defaults to None.

        Raises:
            RuntimeError: the model returned NaN/inf for a text (the texts before it stay
                cached; it is not).
        """
        if isinstance(texts, str):
            raise ValueError(f"texts must be a list of strings, not one string. Received: "
                             f"{texts!r}")  # fmt: skip
        _check_batch_size(batch_size)
        if not getattr(model, "is_multimodal", False):
            raise ValueError("texts need a video-text (LvT) model; this one has no text "
                             "encoder")  # fmt: skip
        texts = [str(t) for t in texts]
        meta = {"model_key": self.model_key, "kind": "text"}
        table = self.table(f"{self.model_key}-texts-{tokenizer_key(tokenizer)}", meta)
        held = table.keys()
        todo = list(dict.fromkeys(t for t in texts if t not in held))
        from ...progress import progress_bar

        bar = progress_bar(progress and bool(todo), len(todo), unit="text",
                           desc="embedding texts")  # fmt: skip
        try:
            if todo and encoder is None:
                from ...runtime import Encoder

                encoder = Encoder(model)
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                ids, mask = tokenizer.tokenize_texts(batch)
                dropped = table.add(batch, np.asarray(encoder.text(ids, mask), np.float32))
                if dropped:
                    raise RuntimeError(f"{NON_FINITE} for {len(dropped)} of the texts (first: "
                                       f"{dropped[0]!r}); nothing of it was cached")  # fmt: skip
                bar.update(len(batch))
        finally:
            bar.close()
        table.maintain()
        return table.read(texts) if table.table is not None else np.zeros((0, 0), np.float32)


def _check_videos(kind: str, token_grid: int | None, batch_size: int,
                  ray: bool | str | None) -> None:  # fmt: skip
    """`videos`' arguments, before anything is read."""
    if kind not in EVAL_CACHE_KINDS:
        raise ValueError(f"kind must be one of {EVAL_CACHE_KINDS}. Received: kind={kind!r}")
    bad_grid = isinstance(token_grid, bool) or not isinstance(token_grid, int) or token_grid < 1
    if token_grid is not None and (kind != "features" or bad_grid):
        raise ValueError("token_grid is a positive int, with kind='features'. Received: "
                         f"token_grid={token_grid!r}, kind={kind!r}")  # fmt: skip
    _check_batch_size(batch_size)
    if ray is not None:
        ray_address(ray)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")


def _post(kind: str, token_grid: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """What a batch of the model's output becomes in the table."""

    def video(vectors):
        return store.normalise(vectors)  # LvT's are already; a video-only model's mean is not

    def features(vectors):
        if token_grid is not None:
            vectors = pool_tokens(vectors, token_grid)
        return np.asarray(vectors, np.float16)

    return video if kind == "video" else features
