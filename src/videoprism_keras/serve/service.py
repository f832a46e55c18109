"""What the search service does, without HTTP: embed a query, search the index, label a clip.

The model is loaded once by whoever makes the service (the CLI resolves the preset and
tokenizer as `videoprism search` does) and runs only in the model queue's thread. The
index is read in worker threads, one read at a time (a `VideoIndex` object is not made
for concurrent use); each read moves to the table's latest committed version (as seen at
most the index's `refresh_seconds` ago: every read in a local folder, every few seconds
on an object store), so clips that `videoprism index` commits meanwhile show up without
a restart, and a write in progress never blocks a read (Lance versions are immutable
once committed).
"""

import asyncio
import collections
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio
import numpy as np

from ..apps import IndexedClip, SearchHit, VideoIndex, ZeroShotClassifier, embed_videos
from ..apps.index import store
from ..constants import COPY_MIN_SECONDS, COPY_THRESHOLD, PROMPT_TEMPLATE, TEMPERATURE
from ..deprecation import message as deprecation_message
from ..deprecation import renamed_arguments
from ..runtime import Encoder
from ..video.options import Sampling
from .batcher import ModelQueue

if TYPE_CHECKING:
    from ..model.backbone import VideoPrismBackbone
    from ..tokenizer import VideoPrismTokenizer

LATENCY_WINDOW = 2048  # latencies kept per kind of query, for the percentiles
LABEL_SETS_KEPT = 16  # label lists whose text embeddings are kept
COPY_ANSWERS_KEPT = 8  # answers of `copies` kept, per (table version, threshold, min_seconds)
PATHS_PER_LOOKUP = 500  # paths per `IN (…)` of a video lookup


class IndexUnavailable(Exception):
    """The index's folder is gone (renamed or deleted), or its object store does not
    answer, while serving: the routes answer 503 until it is back (each read looks
    again)."""


class CopiesBusy(Exception):
    """A whole-index copies run for other settings is under way (one at a time): the
    routes answer 503 with Retry-After."""


class Metrics:
    """Queries, errors and latency per kind of request, since the start."""

    def __init__(self) -> None:
        self.started = time.time()
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.latencies = collections.defaultdict(lambda: collections.deque(maxlen=LATENCY_WINDOW))
        self._lock = threading.Lock()

    def record(self, kind: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self.counts[kind] += 1
            if not ok:
                self.errors[kind] += 1
            self.latencies[kind].append(seconds)

    @contextlib.contextmanager
    def measure(self, kind: str) -> Iterator[None]:
        """Records the time the `with` block takes, as an error if it raises."""
        began = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.record(kind, time.perf_counter() - began, ok)

    def summary(self) -> dict:
        with self._lock:
            kinds = {}
            for kind, count in sorted(self.counts.items()):
                ms = np.asarray(self.latencies[kind]) * 1000
                kinds[kind] = {"count": count, "errors": self.errors[kind],
                               "p50_ms": float(np.percentile(ms, 50)),
                               "p95_ms": float(np.percentile(ms, 95)),
                               "mean_ms": float(ms.mean())}  # fmt: skip
            return {"uptime_s": time.time() - self.started, "queries": sum(self.counts.values()),
                    "errors": sum(self.errors.values()), "by_kind": kinds}  # fmt: skip


class SearchService:
    """Embeds queries, searches an index and labels its clips, for the HTTP routes.

    Args:
        index: VideoIndex. The index, loaded (others may write into it meanwhile).
        model: VideoPrismBackbone. Its preset's model (an LvT one for text and labels).
        tokenizer: VideoPrismTokenizer or None. The model's tokenizer; defaults to None
            (no text queries, no labels).
        template: str. The zero-shot prompt, `{}` where the label goes; defaults to
            `PROMPT_TEMPLATE`.
        temperature: float. The zero-shot softmax temperature; defaults to `TEMPERATURE`.
        num_frames: int or None. Frames an uploaded video is sampled to; defaults to
            None (the index's, else the model's).
        size: int, (height, width) or None. The frame size uploads are resized to;
            defaults to None (the index's, else the model's).
        encoder: `Encoder` or None. What runs the model (an engine and precision: the
            index's, for queries in its embedding space); defaults to None (`Encoder(model)`:
            Keras, in the model's dtype).

    Attributes:
        sampling: `Sampling`. How uploads are sampled (`num_frames`, `size`): as the
            index's clips were.
        num_frames: int. `sampling.num_frames`.
    """

    def __init__(self, index: VideoIndex, model: "VideoPrismBackbone",
                 tokenizer: "VideoPrismTokenizer | None" = None,
                 template: str = PROMPT_TEMPLATE, temperature: float = TEMPERATURE,
                 num_frames: int | None = None, size: int | tuple[int, int] | None = None,
                 encoder: Encoder | None = None) -> None:  # fmt: skip
        self.index, self.model, self.tokenizer = index, model, tokenizer
        self.template, self.temperature = template, temperature
        meta = index.meta  # uploads are sampled as the index's clips were
        self.sampling = Sampling.for_model(model, num_frames or meta.get("num_frames"),
                                           size or meta.get("size"))  # fmt: skip
        self.num_frames = self.sampling.num_frames
        self.encoder = encoder or Encoder(model)
        self.queue = ModelQueue(self._embed_texts)
        self.metrics = Metrics()
        self._index_lock, self._lookup_lock = threading.Lock(), threading.Lock()
        self._lookup = None
        self._copies_limiter = self._clip_limiter = None  # anyio's, made in the event loop
        self._copy_answers: collections.OrderedDict = collections.OrderedDict()
        self._label_sets: collections.OrderedDict = collections.OrderedDict()

    @property
    def frame_size(self) -> tuple[int, int]:
        """Deprecated: `sampling.size` (`size()` is the index's clip count)."""
        warnings.warn(deprecation_message("SearchService", "frame_size", "sampling.size"),
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        return self.sampling.size

    @property
    def has_text(self) -> bool:
        """Whether text queries and labels work (an LvT model and its tokenizer)."""
        return self.tokenizer is not None and bool(getattr(self.model, "is_multimodal", False))

    # ----------------------------------------------------------- model thread
    def _embed_texts(self, texts):
        ids, mask = self.tokenizer.tokenize_texts(texts)
        return self.encoder.text(ids, mask)

    def _embed_file(self, path):
        embedded = embed_videos(self.model, [os.fspath(path)], batch_size=1,
                                num_frames=self.num_frames, size=self.sampling.size,
                                progress=False, on_error="raise", encoder=self.encoder)  # fmt: skip
        return embedded.vectors[0]

    def _probabilities(self, labels, vector):
        key = tuple(labels)
        classifier = self._label_sets.pop(key, None) or ZeroShotClassifier(
            self.model, self.tokenizer, labels, self.template, self.temperature,
            encoder=self.encoder)  # fmt: skip
        self._label_sets[key] = classifier
        while len(self._label_sets) > LABEL_SETS_KEPT:
            self._label_sets.popitem(last=False)
        return classifier.probabilities(vector)[0]

    # --------------------------------------------------------------- queries
    async def embed_text(self, text: str) -> np.ndarray:
        """A text's embedding, batched with other waiting texts."""
        return await self.queue.text(text)

    async def embed_file(self, path: str | os.PathLike) -> np.ndarray:
        """A video's or an image's embedding, sampled as the index's clips were."""
        return await self.queue.run(self._embed_file, path)

    async def labels(self, labels: list[str], vector: np.ndarray) -> list[tuple[str, float]]:
        """Each label's zero-shot probability for a clip's embedding, most probable first."""
        probs = await self.queue.run(self._probabilities, list(labels), vector)
        order = np.argsort(-probs, kind="stable")
        return [(labels[i], float(probs[i])) for i in order]

    async def _read(self, fn, *args, lookup=False):
        lock = self._lookup_lock if lookup else self._index_lock

        def locked():
            with lock:
                try:
                    return fn(*args)
                except Exception as err:
                    self._check_folder(err)
                    raise

        return await anyio.to_thread.run_sync(locked)

    def _check_folder(self, err: Exception) -> None:
        """`IndexUnavailable` (from `err`) when the failure is the index's local folder
        gone, or its object store unreachable, rather than a failure of its own."""
        uri = os.fspath(self.index.uri)
        if isinstance(err, store.Unreachable):
            raise IndexUnavailable(f"the index {uri} cannot be reached ({err.reason}); it is "
                                   "served again once it answers") from err  # fmt: skip
        folder = store.local_path(uri) if store.is_local(uri) else None
        if folder is not None and not (folder / f"{store.TABLE}.lance").is_dir():
            raise IndexUnavailable(f"the index {uri} is gone (renamed or deleted); it is "
                                   "served again once it is back") from err  # fmt: skip

    def _lookups(self):
        """A second handle on the table for clip and poster lookups, so that they do not
        wait behind searches (each handle is used by one thread at a time)."""
        if self._lookup is None:
            index = self.index
            self._lookup = type(index).load(index.uri, storage_options=index.storage_options,
                                            refresh_seconds=index.refresh_seconds)  # fmt: skip
        return self._lookup

    @renamed_arguments(k="top_k")
    async def search(self, vector: np.ndarray, top_k: int, where: str | None = None,
                     under: str | None = None, per_video: bool = False,
                     exclude: str | None = None) -> list[SearchHit]:  # fmt: skip
        """The top `top_k` hits for one embedding, as `VideoIndex.search` finds them.

        Args:
            vector: np.ndarray. The query's embedding.
            top_k: int. How many hits.
            where: str or None. A filter (checked by the caller, see `apps.where`);
                defaults to None.
            under: str or None. Only videos in this absolute folder; defaults to None.
            per_video: bool. The best clip of each video only; defaults to False.
            exclude: str or None. A clip id left out of the hits; defaults to None.
        """
        extra = 1 if exclude else 0
        options = dict(top_k=top_k + extra, where=where, under=under, per_video=per_video)

        def search():
            if not len(self.index):  # a table with no rows yet: nothing found, no error
                return [[]]
            return self.index.search(vector, **options)

        hits = (await self._read(search))[0]
        return [h for h in hits if h.id != exclude][:top_k]

    async def clip(self, clip_id: str) -> IndexedClip | None:
        """The clip (see `VideoIndex.clip`); None when the index has no such clip."""
        return await self._read(lambda: self._lookups().clip(clip_id), lookup=True)

    async def poster(self, clip_id: str) -> bytes | None:
        """The clip's JPEG poster; None without one."""
        return await self._read(lambda: self._lookups().poster(clip_id), lookup=True)

    async def size(self) -> tuple[int, int | None]:
        """Clips in the index and the table's version, at the latest commit."""

        def both():
            return len(self.index), self.index.version  # len() moves to the latest commit

        return await self._read(both)

    # ------------------------------------------------------ moments and copies
    def _checked(self, fn):
        """`fn` with the index's folder gone said as `IndexUnavailable`."""

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                self._check_folder(err)
                raise

        return call

    async def moments(self, vector: np.ndarray, top_k: int, where: str | None = None,
                      under: str | None = None, refine: bool = True,
                      shots: bool = False) -> tuple[list, list, dict]:  # fmt: skip
        """The query's moments, best first, the whole curves of the videos they are in, and
        a clip of each of those videos (see `VideoIndex.moments` and `.curves`).

        Args:
            vector: np.ndarray. The query's embedding.
            top_k: int. How many moments.
            where: str or None. A filter (checked by the caller); defaults to None.
            under: str or None. Only videos in this absolute folder; defaults to None.
            refine: bool. Refined coarse-to-fine with the model (decoding the seconds
                around each moment), in the model's thread; else the index's windows as
                they are, read like a search. Defaults to True.
            shots: bool. Edges snapped to shot cuts (with `refine`); defaults to False.

        Returns:
            (moments, curves, videos): `apps.timeline.Moment`s, `apps.timeline.Curve`s
            in the order their videos first appear among the moments, and {path: the
            `SearchHit` of the video's best clip for the query}.
        """
        moments, meta = await self.coarse_moments(vector, top_k, where, under)
        if refine and moments:
            moments = await self.refine_moments(moments, vector, meta, shots)
        curves, videos = await self.moment_curves(vector, moments)
        return moments, curves, videos

    async def coarse_moments(self, vector: np.ndarray, top_k: int, where: str | None = None,
                             under: str | None = None) -> tuple[list, dict | None]:  # fmt: skip
        """The index's own moments (its windows as they are, read like a search) and the
        index's metadata they were found with (None when the table has no rows yet)."""
        if not (await self.size())[0]:  # a table with no rows yet: nothing found, no error
            return [], None

        def coarse():  # on the searches' handle: one copy of the vectors held, not two
            return self.index.moments(vector, top_k, where=where, under=under), self.index.meta

        return await self._read(coarse)

    async def refine_moments(self, moments: list, vector: np.ndarray, meta: dict,
                             shots: bool = False) -> list:  # fmt: skip
        """`moments` refined coarse-to-fine with the model (decoding the seconds around
        each), in the model's thread; the index is not read there."""
        return await self.queue.run(self._refine, moments, vector, meta, shots)

    async def moment_curves(self, vector: np.ndarray, moments: list) -> tuple[list, dict]:
        """The whole curves of the videos of `moments`, in the order they first appear
        among them, and {path: the `SearchHit` of the video's best clip for the query}."""
        paths = list(dict.fromkeys(m.path for m in moments))

        def curves_and_videos():
            if not paths:
                return [], {}
            curves = {c.path: c for c in self.index.curves(vector, paths=paths)}
            return [curves[p] for p in paths if p in curves], self._videos(vector, paths)

        return await self._read(curves_and_videos)

    def _refine(self, moments, vector, meta, shots):
        """Coarse moments refined around their edges at the index's own sampling, so that
        the finer windows are comparable with the indexed ones (see `apps.refine`)."""
        from ..apps.refine import refine

        clip = meta["clip_seconds"]
        return refine(self.model, moments, vector, clip_seconds=clip,
                      stride_seconds=meta.get("stride_seconds") or clip,
                      num_frames=meta.get("num_frames") or self.sampling.num_frames,
                      size=meta.get("size") or self.sampling.size, shots=shots,
                      encoder=self.encoder)  # fmt: skip

    def _videos(self, vector: np.ndarray, paths: list[str]) -> dict:
        """{path: the best clip of that video for `vector`}, for the videos still held."""
        found = {}
        for i in range(0, len(paths), PATHS_PER_LOOKUP):
            chunk = paths[i : i + PATHS_PER_LOOKUP]
            where = f"path IN ({', '.join(map(store.sql_string, chunk))})"
            hits = self.index.search(vector, len(chunk), where=where, per_video=True)[0]
            found.update((h.path, h) for h in hits)
        return found

    async def copies(
        self, threshold: float | None = None, min_seconds: float | None = None
    ) -> tuple[list, dict, int | None, bool]:
        """Every group of copies in the index (see `VideoIndex.copies`): a whole-index job,
        so one answer per table version and settings is kept, and one run goes at a time:
        requests for its settings wait for its answer, others are refused (`CopiesBusy`).

        Args:
            threshold: float or None. The similarity two windows need; defaults to None
                (`constants.COPY_THRESHOLD`).
            min_seconds: float or None. The shortest shared span; defaults to None
                (`constants.COPY_MIN_SECONDS`).

        Returns:
            (groups, videos, version, cached): `apps.copies.CopyGroup`s; {path: a clip of
            that video}; the table version the run read; whether the answer was kept.

        Raises:
            CopiesBusy: if a run for other settings is under way.
        """
        settings = copy_settings(threshold, min_seconds)
        _, version = await self.size()
        key = (version, *settings)
        task = self._copy_answers.get(key)
        cached = task is not None and task.done()
        if task is None:
            running = self._running_copies()
            if running is not None and running[0] != settings:
                raise CopiesBusy(
                    f"copies: a run for threshold={running[0][0]}, min_seconds="
                    f"{running[0][1]} is under way (one whole-index run at a time); ask "
                    f"again in a while, or with those settings. Received: threshold="
                    f"{settings[0]}, min_seconds={settings[1]}")  # fmt: skip
            task = running[1] if running is not None else self._start_copies(key)
        else:
            self._copy_answers.move_to_end(key)
        groups, videos, read = await asyncio.shield(task)  # a client gone: the run goes on
        return groups, videos, read, cached

    async def clip_copies(
        self, path: str, threshold: float | None = None, min_seconds: float | None = None
    ) -> tuple[list, dict, int | None, bool]:
        """The copies involving one video: from the kept whole-index answer (or the run
        under way) for these settings, else found for that video's windows alone
        (`VideoIndex.copies(path=…)`). Returns as `copies`; never refused."""
        settings = copy_settings(threshold, min_seconds)
        _, version = await self.size()
        task = self._copy_answers.get((version, *settings))
        cached = task is not None and task.done()
        running = self._running_copies()
        if task is None and running is not None and running[0] == settings:
            task = running[1]
        if task is not None:
            groups, videos, read = await asyncio.shield(task)
            return groups, videos, read, cached
        if self._clip_limiter is None:  # made in the event loop
            self._clip_limiter = anyio.CapacityLimiter(1)
        groups, videos, read = await anyio.to_thread.run_sync(
            self._checked(self._find_copies), settings, path, limiter=self._clip_limiter
        )
        return groups, videos, read, False

    def _running_copies(self):
        """(settings, task) of the whole-index run under way; None when none is."""
        for (_, *settings), task in self._copy_answers.items():
            if not task.done():
                return tuple(settings), task
        return None

    def _start_copies(self, key):
        if self._copies_limiter is None:  # made in the event loop
            self._copies_limiter = anyio.CapacityLimiter(1)
        # Its own limiter: the run holds none of the worker threads searches and posters
        # share, however long it takes.
        task = asyncio.ensure_future(anyio.to_thread.run_sync(
            self._checked(self._find_copies), key[1:], limiter=self._copies_limiter))  # fmt: skip
        task.add_done_callback(lambda done: self._forget_failed(key, done))
        self._copy_answers[key] = task
        finished = [k for k, t in self._copy_answers.items() if t.done()]  # oldest first
        for old in finished[: max(0, len(self._copy_answers) - COPY_ANSWERS_KEPT)]:
            del self._copy_answers[old]  # a run under way is never dropped
        return task

    def _forget_failed(self, key, task) -> None:
        if task.cancelled() or task.exception() is not None:  # retried by the next request
            if self._copy_answers.get(key) is task:
                del self._copy_answers[key]

    def _find_copies(self, settings, path=None):
        threshold, min_seconds = settings
        # A handle of the run's own, so that searches go on meanwhile; dropped after it, so
        # that its copy of the vectors is held only while it runs.
        index = type(self.index).load(self.index.uri, storage_options=self.index.storage_options,
                                      refresh_seconds=self.index.refresh_seconds)  # fmt: skip
        groups = []
        if len(index):
            groups = index.copies(threshold=threshold, min_seconds=min_seconds, path=path)
        version = index.version  # the version the run read (it moves to the latest)
        del index
        paths = list(dict.fromkeys(p for g in groups for p in g.paths))
        if not paths:
            return groups, {}, version
        with self._index_lock:
            # Any non-zero vector: the lookup wants a clip of each video, not a ranking.
            return groups, self._videos(np.ones(self.index.dim, np.float32), paths), version


def copy_settings(threshold: float | None, min_seconds: float | None) -> tuple[float, float]:
    """`threshold` and `min_seconds` as a run uses them: None is the library's default,
    so that asking for it and leaving it out share one run and one kept answer."""
    return (float(COPY_THRESHOLD if threshold is None else threshold),
            float(COPY_MIN_SECONDS if min_seconds is None else min_seconds))  # fmt: skip
