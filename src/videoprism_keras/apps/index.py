"""A searchable collection of video (clip) embeddings: by text or by example video.

Vectors are L2-normalised, so the score is the cosine similarity. Below
`ann_threshold` vectors the search is an exact numpy matrix product; above it, an
HNSW graph from faiss (figures: benchmarks/README.md, "Video index").
The graph is built once, when the index reaches the threshold (on `add`, or on
`save` after the threshold was lowered), then grows with `add` and is saved beside
the vectors, so neither an added folder, reopening the index nor a search rebuilds it.

    index = VideoIndex.from_videos(model, ["videos/"], clip_seconds=10)
    index.save("my_index")
    hits = VideoIndex.load("my_index").search(query_embedding, top_k=5)
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedding import Embeddings, embed_videos, find_videos, item_key

# Exact search costs ~0.1 µs per vector per query here (22 ms at 200,000 vectors, 53 ms
# at 500,000), and is always right; the graph answers in ~4 ms but its recall@10 falls
# with size (0.97 at 100,000, 0.82 at 500,000). Exact wins until a query takes ~0.1 s.
ANN_THRESHOLD = 1_000_000
# HNSW settings, chosen with benchmarks/index_search.py: faiss' default construction
# depth (40) loses ~5-10% recall@10 against 80 (twice the build time); 256 candidates per
# query cost a few ms. (An IVF index was far worse on clustered data: recall 0.3.)
HNSW_NEIGHBOURS = 32  # graph degree M
HNSW_EF_CONSTRUCTION = 80  # candidates while inserting: graph quality against build time
HNSW_EF_SEARCH = 256  # candidates per query: recall against latency
GRAPH_FILE = "hnsw.faiss"


@dataclass(frozen=True)
class SearchHit:
    path: str
    start: float
    end: float
    score: float

    def as_dict(self):
        return {"path": self.path, "start_s": _finite(self.start), "end_s": _finite(self.end),
                "score": self.score}  # fmt: skip


def _finite(x):
    return None if np.isnan(x) else float(x)


def _normalise(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt((x * x).sum(axis=-1, keepdims=True) + 1e-12)


class VideoIndex:
    def __init__(self, dim=None, ann_threshold=ANN_THRESHOLD, meta=None):
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.vectors = np.zeros((0, dim or 0), np.float32)
        self.paths: list[str] = []
        self.starts = np.zeros(0)
        self.ends = np.zeros(0)
        self.meta = dict(meta or {})
        self._ann = None

    def __len__(self):
        return len(self.vectors)

    def keys(self) -> set:
        """The `item_key(path, start, end)` of every item, to skip what is already indexed."""
        rows = zip(self.paths, self.starts, self.ends, strict=True)
        return {item_key(*row) for row in rows}

    def add(self, embeddings: Embeddings) -> "VideoIndex":
        """Adds (N, D) embeddings with their paths and clip times."""
        if len(embeddings) == 0:
            return self
        vectors = _normalise(embeddings.vectors)
        if vectors.ndim != 2:
            raise ValueError(f"an index holds (N, D) video embeddings; got {vectors.shape}")
        if self.dim is None or len(self) == 0:
            self.dim = vectors.shape[1]
            self.vectors = np.zeros((0, self.dim), np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"embeddings have dimension {vectors.shape[1]}, the index {self.dim}")
        self.vectors = np.concatenate([self.vectors, vectors])
        self.paths += list(map(str, embeddings.paths))
        self.starts = np.concatenate([self.starts, embeddings.starts])
        self.ends = np.concatenate([self.ends, embeddings.ends])
        if self._ann is not None:  # HNSW graphs take insertions: no rebuild
            self._ann.add(vectors)
        elif len(self) >= self.ann_threshold:  # crossed the threshold: build it once
            self._ann_index()
        return self

    def add_videos(self, model, sources, clip_seconds=None, stride_seconds=None,
                   skip_existing=True, **options) -> Embeddings:  # fmt: skip
        """Embeds video files and folders (walked recursively) and adds them.

        Args:
            model: the `VideoPrismBackbone` whose embedding space the index holds.
            sources: video files and/or folders; paths are stored absolute.
            clip_seconds, stride_seconds: index windows of long videos (with times).
            skip_existing: leave out (without running the model) the items whose
                (path, start, end) the index already holds.
            **options: `embed_videos` options (batch_size, num_frames, size, progress,
                on_error, encoder).

        Returns the `Embeddings` added: their `skipped` and `failures` say what was not.
        """
        files = [os.path.abspath(f) for f in find_videos(sources)]
        exclude = self.keys() if skip_existing else None
        embeddings = embed_videos(
            model, files, clip_seconds=clip_seconds, stride_seconds=stride_seconds,
            exclude=exclude, **options,
        )  # fmt: skip
        self.add(embeddings)
        return embeddings

    @classmethod
    def from_videos(cls, model, sources, clip_seconds=None, stride_seconds=None,
                    ann_threshold=ANN_THRESHOLD, meta=None, **options) -> "VideoIndex":  # fmt: skip
        """A new index of video files and folders (see `add_videos`); save it with `save`."""
        index = cls(ann_threshold=ann_threshold, meta=meta)
        index.add_videos(model, sources, clip_seconds, stride_seconds, **options)
        return index

    def search(self, queries, top_k=5) -> list[list[SearchHit]]:
        """(Q, D) or (D,) query embeddings → per query, the top-k hits, best first."""
        if len(self) == 0:
            raise ValueError("the index is empty")
        queries = _normalise(np.atleast_2d(queries))
        top_k = min(top_k, len(self))
        if len(self) >= self.ann_threshold:
            scores, ids = self._ann_index().search(queries, top_k)
        else:
            sims = queries @ self.vectors.T
            ids = np.argpartition(-sims, top_k - 1, axis=1)[:, :top_k]  # O(N), then sort k
            ids = np.take_along_axis(ids, np.argsort(-np.take_along_axis(sims, ids, 1), 1), 1)
            scores = np.take_along_axis(sims, ids, axis=1)
        return [[SearchHit(self.paths[i], self.starts[i], self.ends[i], float(s))
                 for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
                for row_ids, row_scores in zip(ids, scores, strict=True)]  # fmt: skip

    def _ann_index(self):
        if self._ann is None:
            try:
                import faiss
            except ImportError as err:
                raise ImportError(
                    f"indexes of {self.ann_threshold}+ vectors use faiss: pip install faiss-cpu"
                ) from err
            index = faiss.IndexHNSWFlat(self.dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
            index.add(self.vectors)
            self._ann = index
        return self._ann

    def save(self, directory) -> Path:
        """Writes vectors.npy, index.json (and the graph, if built); each file replaced
        atomically, index.json last, so an interrupted save leaves the old index readable."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "vectors.npy.tmp", "wb") as f:
            np.save(f, self.vectors)
        (out / "vectors.npy.tmp").replace(out / "vectors.npy")
        graph = out / GRAPH_FILE
        if len(self) and len(self) >= self.ann_threshold:
            self._ann_index()  # built here if the threshold was lowered since the last add
        if self._ann is not None:
            import faiss

            faiss.write_index(self._ann, str(out / "graph.tmp"))
            (out / "graph.tmp").replace(graph)
        elif graph.exists():
            graph.unlink()  # stale: it does not hold the current vectors
        rows = zip(self.paths, self.starts, self.ends, strict=True)
        items = [{"path": p, "start_s": _finite(s), "end_s": _finite(e)} for p, s, e in rows]
        meta = {"dim": self.dim, "ann_threshold": self.ann_threshold, "meta": self.meta,
                "items": items}  # fmt: skip
        (out / "index.json.tmp").write_text(json.dumps(meta))
        (out / "index.json.tmp").replace(out / "index.json")
        return out

    @classmethod
    def load(cls, directory) -> "VideoIndex":
        directory = Path(directory)
        try:
            meta = json.loads((directory / "index.json").read_text())
            vectors = np.load(directory / "vectors.npy")
        except (OSError, ValueError) as err:
            raise ValueError(f"{directory} is not a video index: {err}") from err
        index = cls(meta["dim"], meta.get("ann_threshold", ANN_THRESHOLD), meta.get("meta"))
        items = meta["items"]
        if len(items) != len(vectors):
            raise ValueError(f"{directory} is not a video index: {len(items)} items, "
                             f"{len(vectors)} vectors")  # fmt: skip
        times = lambda key: np.array([np.nan if it[key] is None else it[key] for it in items])  # noqa: E731
        index.vectors = np.asarray(vectors, np.float32)
        index.paths = [it["path"] for it in items]
        index.starts, index.ends = times("start_s"), times("end_s")
        if (directory / GRAPH_FILE).exists():
            import faiss

            graph = faiss.read_index(str(directory / GRAPH_FILE))
            if graph.ntotal == len(index):
                graph.hnsw.efSearch = HNSW_EF_SEARCH
                index._ann = graph
        return index
