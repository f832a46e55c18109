"""The first stage of finding copies: each query window's nearest windows in other videos,
scored by the cosine similarity of the vectors centred on the index's mean.

Why centred: every embedding of a model shares a common component (the small test
checkpoint's unrelated videos score 0.7-0.99 by plain cosine), which drowns what tells
two videos apart; subtracting the collection's mean vector and renormalising removes it,
so that one threshold means the same on any index. With unit vectors x, y and the mean m,

    (x - m)·(y - m) = x·y - x·m - y·m + m·m,    |x - m|² = 1 - 2 x·m + m·m,

so a pair's centred score follows from its plain one (`Centring.pairs`); exact search
holds the centred unit vectors (one more copy of the vectors, below the vector index's
threshold), so that a block's scores are one matrix product with nothing after it.

Two ways, the same matches:

- exact (`exact_block`): blocks of queries against every held vector, the block's rows
  sized so that its scores take at most `BLOCK_BYTES`; the cost is N² dot products, the
  memory bounded;
- through the LanceDB vector index (`ann_block`), past the index's `ann_threshold`: each
  query's `neighbours × ANN_CANDIDATES` nearest by plain cosine among the other videos' windows,
  re-scored centred against the held vectors; the cost grows with N·k.

Each returns the matches of its queries as three arrays (query row, matched row, score);
`apps/copies.py` runs the blocks in process or as Ray tasks (`copy_ray.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..constants import CENTRED_FLOOR
from .timeline import CENTRING_PIECE, centring

BLOCK_BYTES = 256 * 2**20  # one block's (queries × rows) float32 scores
# Past the threshold: candidates fetched from the vector index per match kept (plain
# cosine ranks them, the centred score re-ranks them).
ANN_CANDIDATES = 4
ANN_QUERIES = 256  # query vectors per LanceDB search call
# Lists of the vector index probed, as a share of them: a copy's windows are far nearer
# each other than anything else is, so far fewer lists than a search probes find them
# (`ann.ANN_PROBED_SHARE`; recall and time: benchmarks/README.md, "Copies").
COPY_PROBED_SHARE = 0.1
# Two rows this alike are the same content whatever the centring says.
IDENTICAL = 1.0 - 1e-6


@dataclass
class Centring:
    """What centred scores need of the held vectors: the mean, each row's dot with it and
    its centred norm; for exact search, the centred unit vectors themselves."""

    mean: np.ndarray  # (D,) m
    along: np.ndarray  # (N,) x·m
    norms: np.ndarray  # (N,) |x - m|
    mean_sq: float  # m·m
    held: np.ndarray | None = None  # (N, D) centred unit vectors: `unit`

    @classmethod
    def of(cls, vectors: np.ndarray) -> Centring:
        mean, along, norms = centring(vectors)
        return cls(mean.astype(np.float32), along, norms, float(mean @ mean))

    def unit(self, vectors: np.ndarray) -> np.ndarray:
        """The vectors centred and renormalised, (N, D) float32; a row with no direction
        left (`CENTRED_FLOOR`: an index of a video and its exact duplicate, whole) keeps
        its plain vector."""
        out = np.empty_like(vectors)
        for start in range(0, len(vectors), CENTRING_PIECE):  # a bounded temporary
            part = slice(start, start + CENTRING_PIECE)
            norms = self.norms[part]
            flat = norms < CENTRED_FLOOR
            centred = (vectors[part] - self.mean) / np.maximum(norms, CENTRED_FLOOR)[:, None]
            out[part] = np.where(flat[:, None], vectors[part], centred).astype(np.float32)
        return out

    def pairs(self, plain: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Plain cosines of the pairs (rows[i], columns[i]), made centred."""
        flat = (self.norms[rows] < CENTRED_FLOOR) | (self.norms[columns] < CENTRED_FLOOR)
        centred = (plain - self.along[rows] - self.along[columns] + self.mean_sq) / (
            np.maximum(self.norms[rows], CENTRED_FLOOR)
            * np.maximum(self.norms[columns], CENTRED_FLOOR)
        )
        raw = np.where(plain >= IDENTICAL, 1.0, plain)
        return np.where(flat, raw, centred).astype(np.float32)


def block_rows(n_rows: int) -> int:
    """Queries per exact block: their scores against `n_rows` rows take BLOCK_BYTES."""
    return max(1, min(n_rows, BLOCK_BYTES // (4 * max(n_rows, 1))))


def _top(scores: np.ndarray, queries: np.ndarray, neighbours: int, threshold: float):
    """Each row's `neighbours` best columns scoring at least `threshold` → (query, column, score).
    Most scores are below the threshold: only rows with more than `neighbours` above it are
    partitioned."""
    above = scores >= threshold
    rows, columns = np.nonzero(above)
    many = np.flatnonzero(np.bincount(rows, minlength=len(scores)) > neighbours)
    if len(many):
        keep = ~np.isin(rows, many)
        rows, columns = rows[keep], columns[keep]
        best = np.argpartition(-scores[many], neighbours - 1, axis=1)[:, :neighbours]
        rows = np.concatenate([rows, np.repeat(many, neighbours)])
        columns = np.concatenate([columns, best.ravel()])
    values = scores[rows, columns]
    keep = values >= threshold
    return queries[rows[keep]], columns[keep], values[keep].astype(np.float32)


def exact_block(unit: np.ndarray, codes: np.ndarray, queries: np.ndarray, neighbours: int,
                threshold: float):  # fmt: skip
    """The matches of the rows `queries` against every row (exact).

    Args:
        unit: (N, D) float32 array. Every row's centred unit vector (`Centring.unit`).
        codes: (N,) int array. Each row's video, as a small integer (a row's own video's
            rows are never its matches).
        queries: (Q,) int array. The rows asked about.
        neighbours: int. Matches per query at most.
        threshold: float. The least centred score of a match.

    Returns:
        Three (M,) arrays: query row, matched row, centred score.
    """
    scores = unit[queries] @ unit.T
    scores[codes[queries][:, None] == codes[None, :]] = -np.inf
    return _top(scores, queries, neighbours, threshold)


def ann_candidates(table, vectors: np.ndarray, path: str, limit: int, nprobes: int):
    """Candidates for query vectors of the video `path` through the table's vector index:
    each one's `limit` nearest windows of other videos by plain cosine.

    Returns:
        Two (M,) arrays: the query (its position in `vectors`), the candidate's Lance row
        id.
    """
    from .index import store

    predicate = f"path != {store.sql_string(path)}"
    asked, rowids = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
    for start in range(0, len(vectors), ANN_QUERIES):
        part = vectors[start : start + ANN_QUERIES]
        search = (table.search(part, "vector").distance_type("dot").nprobes(nprobes)
                  .where(predicate, prefilter=True).limit(limit).select(["_distance"])
                  .with_row_id(True))  # fmt: skip
        found = search.to_arrow()
        if "query_index" in found.column_names:
            asked.append(found["query_index"].to_numpy().astype(np.int64) + start)
        else:  # one query vector
            asked.append(np.full(len(found), start, np.int64))
        rowids.append(found["_rowid"].to_numpy().astype(np.uint64))
    return np.concatenate(asked), np.concatenate(rowids)


def ann_matches(rows, centring: Centring, queries: np.ndarray, asked: np.ndarray,
                rowids: np.ndarray, neighbours: int, threshold: float):  # fmt: skip
    """The candidates of the rows `queries` (`ann_candidates`) scored centred against
    `rows` (a `Snapshot` of the table's version searched): the matches, as `exact_block`."""
    at = rows.positions(rowids)
    keep = at >= 0
    asked, at = queries[asked[keep]], at[keep]
    plain = np.einsum("ij,ij->i", rows.vectors[asked], rows.vectors[at])
    return _best_per_query(asked, at, centring.pairs(plain, asked, at), neighbours, threshold)


def _best_per_query(asked, at, scores, neighbours, threshold):
    """Of (query, candidate, score) triples, each query's `neighbours` best scoring at least
    `threshold`."""
    order = np.lexsort((-scores, asked))
    asked, at, scores = asked[order], at[order], scores[order]
    first = np.searchsorted(asked, asked)  # where each query's candidates begin
    rank = np.arange(len(asked)) - first
    keep = (rank < neighbours) & (scores >= threshold)
    return asked[keep], at[keep], scores[keep].astype(np.float32)


def block_task(shared: tuple, payload, table=None):
    """One block's work, in process or as a Ray task (small to send: no snapshot).

    Args:
        shared: tuple. ("exact", centred unit vectors, codes, neighbours, threshold), or ("ann",
            the table as `open_table` takes it, candidates per query, lists probed).
        payload: exact: the query rows; through the vector index: (their vectors, their
            video's path).
        table: the table opened already (in process). Defaults to None.

    Returns:
        Exact: the matches (`exact_block`). Through the vector index: the candidates
        (`ann_candidates`), which the driver scores (`ann_matches`).
    """
    if shared[0] == "exact":
        _, unit, codes, neighbours, threshold = shared
        return exact_block(unit, codes, payload, neighbours, threshold)
    _, spec, limit, nprobes = shared
    vectors, path = payload
    return ann_candidates(table or open_table(spec), vectors, path, limit, nprobes)


def ann_probes(lists: int) -> int:
    """Lists probed for copies in a vector index of `lists` lists."""
    return max(1, math.ceil(COPY_PROBED_SHARE * lists))


def open_table(ann: dict):
    """The clips table at the version searched (`ann`: `uri`, `storage_options`,
    `version`)."""
    import lancedb

    from .index import store

    db = lancedb.connect(ann["uri"], storage_options=ann.get("storage_options"))
    table = db.open_table(store.TABLE)
    table.checkout(ann["version"])
    return table
