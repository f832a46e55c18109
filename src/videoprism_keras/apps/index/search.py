"""Searching the clips table: exact (a matrix product over a `Snapshot`), through the
LanceDB vector index with Lance's own exact re-ranking of its candidates, or through the
vector index with the candidates re-ranked against a held `Snapshot`.

Vectors are L2-normalised, so every score is the cosine similarity. A clip the table
holds twice (two writers on an object store: see store.py) is shown once; with
`per_video`, each video once, by its best clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...deprecation import renamed_arguments, renamed_attribute
from ...video.times import seconds_or_nan, seconds_or_none
from . import store
from .snapshot import Snapshot

if TYPE_CHECKING:
    from lancedb.table import LanceTable


@dataclass(frozen=True)
class SearchHit:
    """One clip found by a search.

    Attributes:
        path: str. The video's path (its real path, for a file).
        start_s: float. The clip's start in seconds; NaN for a whole video.
        end_s: float. The clip's end in seconds; NaN for a whole video.
        score: float. The cosine similarity to the query.
        id: str. The clip's id (see `VideoIndex.poster`, `VideoIndex.clip`). Defaults
            to "".
        duration_s: float. The video's duration in seconds; NaN if unknown. Defaults
            to NaN.
    """

    path: str
    start_s: float
    end_s: float
    score: float
    id: str = ""
    duration_s: float = float("nan")

    start = renamed_attribute("start_s")  # the names before `start_s`, `end_s`, `duration_s`
    end = renamed_attribute("end_s")
    duration = renamed_attribute("duration_s")

    def as_dict(self) -> dict:
        """The hit as JSON takes it: path, start_s, end_s, score, id, duration_s; times
        None where unknown."""
        return {"path": self.path, "start_s": seconds_or_none(self.start_s),
                "end_s": seconds_or_none(self.end_s), "score": self.score, "id": self.id,
                "duration_s": seconds_or_none(self.duration_s)}  # fmt: skip


SearchHit.__init__ = renamed_arguments(start="start_s", end="end_s", duration="duration_s")(
    SearchHit.__init__
)


def sql_predicate(where: str | None, under: str | os.PathLike | None) -> str | None:
    """`where` (SQL over the table's columns) and `under` (a folder) as one predicate; None
    for no filter."""
    terms = []
    if where:
        terms.append(f"({where})")
    if under is not None:
        folder = os.path.realpath(os.fspath(under))
        terms.append(f"starts_with(path, {store.sql_string(folder.rstrip(os.sep) + os.sep)})")
    return " AND ".join(terms) or None


def exact_search(table: LanceTable, rows: Snapshot, queries: np.ndarray, top_k: int,
                 predicate: str | None, per_video: bool) -> list[list[SearchHit]]:  # fmt: skip
    """Every query against every clip of `rows` (`table`'s snapshot) that `predicate`
    keeps: per query, the `top_k` best hits, best first."""
    chosen = selected_rows(table, rows, predicate)
    if not len(chosen):
        return [[] for _ in queries]
    sims = queries @ rows.vectors[chosen].T if len(chosen) < len(rows) else (
        queries @ rows.vectors.T)  # fmt: skip
    if not per_video:  # all queries at once: O(N) to find the k, then sort them
        k = min(top_k, sims.shape[1])
        best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, best, 1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, 1)
    out = []
    videos = rows.codes[chosen] if per_video else None  # once, not per query
    for q, scores in enumerate(sims):
        if per_video:
            top = _first_of_each(np.argsort(-scores, kind="stable"), videos)[:top_k]
        else:
            top = best[q]
        out.append([_hit(rows, chosen[i], scores[i]) for i in top])
    return out


def approximate_search(table: LanceTable, query: np.ndarray, top_k: int, predicate: str | None,
                       per_video: bool, nprobes: int,
                       refine_factor: int) -> list[SearchHit]:  # fmt: skip
    """One query through the vector index, `nprobes` lists searched, `top_k ×
    refine_factor` candidates re-ranked exactly by Lance (reading them from the table)."""
    limit = top_k * (8 if per_video else 1)
    while True:
        columns = ["id", "path", "start_s", "end_s", "duration_s", "_distance"]
        search = (table.search(query, "vector").distance_type("dot").nprobes(nprobes)
                  .refine_factor(refine_factor).limit(limit).select(columns))  # fmt: skip
        found = _candidates(search, predicate).to_pylist()
        hits, seen = [], set()
        for row in found:  # best first; a copy of a clip once
            key = row["path"] if per_video else row["id"]
            if key in seen:
                continue
            seen.add(key)
            hits.append(SearchHit(row["path"], seconds_or_nan(row["start_s"]),
                                  seconds_or_nan(row["end_s"]), 1.0 - row["_distance"],
                                  row["id"], seconds_or_nan(row["duration_s"])))  # fmt: skip
        if len(hits) >= top_k or len(found) < limit:
            return hits[:top_k]
        limit *= 4  # per video: too few distinct videos among the candidates


def reranked_search(table: LanceTable, rows: Snapshot, query: np.ndarray, top_k: int,
                    predicate: str | None, per_video: bool, nprobes: int,
                    refine_factor: int) -> list[SearchHit]:  # fmt: skip
    """The vector index's candidates (row ids only), re-ranked against the vectors held
    in `rows`: what `refine_factor` does, without reading the candidates' rows."""
    limit = top_k * refine_factor
    while True:
        # (Selecting nothing would read every column: the distance is the least.)
        search = (table.search(query, "vector").distance_type("dot").nprobes(nprobes)
                  .limit(limit).select(["_distance"]).with_row_id(True))  # fmt: skip
        found = _candidates(search, predicate)["_rowid"].to_numpy()
        at = rows.positions(found)
        if (at < 0).any():  # not the version held (cannot happen): Lance's own refine
            return approximate_search(table, query, top_k, predicate, per_video, nprobes,
                                      refine_factor)  # fmt: skip
        scores = rows.vectors[at] @ query
        order = np.argsort(-scores, kind="stable")
        # A copy of a clip once; per video, its best clip.
        top = _first_of_each(order, (rows.codes if per_video else rows.ids)[at])
        if len(top) >= top_k or len(found) < limit:
            return [_hit(rows, at[i], scores[i]) for i in top[:top_k]]
        limit *= 4  # per video: too few distinct videos among the candidates


def _hit(rows: Snapshot, i: int, score: float) -> SearchHit:
    return SearchHit(rows.paths[i], rows.start_s[i], rows.end_s[i], float(score), rows.ids[i],
                     rows.duration_s[i])  # fmt: skip


def selected_rows(table, rows: Snapshot, predicate):
    """The positions in `rows` of the clips `predicate` keeps."""
    if predicate is None:
        return np.arange(len(rows))
    try:
        found = (table.search().where(predicate).select(["id"]).with_row_id(True)
                 .limit(None).to_arrow())  # fmt: skip
    except ValueError as err:
        raise ValueError(f"the filter {predicate!r} is not valid SQL over the index's "
                         f"columns ({str(err).splitlines()[0]})") from err  # fmt: skip
    return np.flatnonzero(np.isin(rows.rowids, found["_rowid"].to_numpy()))


def _candidates(search, predicate):
    if predicate is not None:
        search = search.where(predicate, prefilter=True)
    try:
        return search.to_arrow()
    except ValueError as err:
        raise ValueError(f"the filter {predicate!r} is not valid SQL over the index's "
                         f"columns ({str(err).splitlines()[0]})") from err  # fmt: skip


def _first_of_each(order, keys) -> np.ndarray:
    """`order` (best first) keeping the first of each key: the best clip of each video."""
    _, first = np.unique(keys[order], return_index=True)
    return order[np.sort(first)]
