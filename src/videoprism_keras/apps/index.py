"""A searchable collection of video (clip) embeddings: by text or by example video.

Vectors are L2-normalised, so the score is the cosine similarity. Below
`ann_threshold` vectors the search is an exact numpy matrix product (a million
dot products take milliseconds); above it, an HNSW graph from faiss answers in
well under a millisecond per query at a small recall cost (see benchmarks/README.md).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedding import Embeddings

ANN_THRESHOLD = 200_000


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

    def add(self, embeddings: Embeddings) -> "VideoIndex":
        """Adds (N, D) embeddings with their paths and clip times."""
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
        self._ann = None  # rebuilt on the next search
        return self

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
            ids = np.argsort(-sims, axis=1)[:, :top_k]
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
            index = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 128
            index.add(self.vectors)
            self._ann = index
        return self._ann

    def save(self, directory) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "vectors.npy", self.vectors)
        rows = zip(self.paths, self.starts, self.ends, strict=True)
        items = [{"path": p, "start_s": _finite(s), "end_s": _finite(e)} for p, s, e in rows]
        meta = {"dim": self.dim, "ann_threshold": self.ann_threshold, "meta": self.meta,
                "items": items}  # fmt: skip
        tmp = out / "index.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(out / "index.json")
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
        times = lambda key: [np.nan if it[key] is None else it[key] for it in items]  # noqa: E731
        paths = [it["path"] for it in items]
        index.add(Embeddings(vectors, paths, times("start_s"), times("end_s")))
        return index
