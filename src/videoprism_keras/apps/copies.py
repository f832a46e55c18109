"""Copies in a video index: which videos (or parts of them) are copies of which, and where.

    groups = index.copies()                       # every video and its copies
    for copy in groups[0].copies:
        print(copy.b.path, "is", copy.a.path, "from", copy.a.start_s, "to", copy.a.end_s)

Three stages, one module each:

1. matches (`copy_search.py`): each window's `neighbours` nearest windows in other videos, scored
   by the cosine similarity of the vectors centred on the index's mean, kept from
   `threshold` up; exact blocks of queries below the index's `ann_threshold`, its LanceDB
   vector index past it, so that the cost grows with N·k; in process or as Ray tasks
   (`copy_ray.py`), with the same result;
2. the vote (`copy_vote.py`): between two videos, the matches vote on a time offset; the
   winning offset's matches, in runs of adjacent windows spanning `min_seconds` or
   more, are the copies;
3. here: the videos linked by copies, grouped (connected components).

A pair of videos is reported once, `a` the longer of the two (by duration; the earlier
path of two as long), `b` the other: a time t in b is t + offset_s in a. An index of
whole videos (no windows) has no times: there a copy is two whole videos alike, spans
the whole videos (0 to their duration), offset 0, and `min_seconds` is not applied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import COPY_MIN_SECONDS, COPY_NEIGHBOURS, COPY_THRESHOLD
from ..video.times import seconds_or_none
from . import copy_search
from .copy_vote import pair_runs

if TYPE_CHECKING:
    from .index.snapshot import Snapshot

# `check_copy_options` is public: `VideoIndex.copies` checks its arguments with it before
# reading the index (and the CLI's and server's errors come from there).
__all__ = ["Copy", "CopyGroup", "Span", "check_copy_options", "find_copies"]


@dataclass(frozen=True)
class Span:
    """A part of a video: its path, and start and end in seconds (NaN where unknown)."""

    path: str
    start_s: float
    end_s: float

    def as_dict(self) -> dict:
        """`{"path", "start_s", "end_s"}`, times None where unknown."""
        return {"path": self.path, "start_s": seconds_or_none(self.start_s),
                "end_s": seconds_or_none(self.end_s)}  # fmt: skip


@dataclass(frozen=True)
class Copy:
    """Content two videos share.

    Attributes:
        a: `Span`. Where it is in the longer video (of two as long, the earlier path).
        b: `Span`. Where it is in the other.
        offset_s: float. A time t in b is t + offset_s in a.
        score: float. The mean centred similarity of its matched windows.
    """

    a: Span
    b: Span
    offset_s: float
    score: float

    def as_dict(self) -> dict:
        """`{"a": {...}, "b": {...}, "offset_s", "score"}` (spans as `Span.as_dict`)."""
        return {"a": self.a.as_dict(), "b": self.b.as_dict(), "offset_s": self.offset_s,
                "score": self.score}  # fmt: skip


@dataclass(frozen=True)
class CopyGroup:
    """Videos linked by copies (a video and all its copies, and theirs).

    Attributes:
        paths: list of str. The videos, longest first.
        copies: list of `Copy`. Every copy between two of them.
    """

    paths: list[str] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)

    def as_dict(self) -> dict:
        """`{"paths": [...], "copies": [...]}` (copies as `Copy.as_dict`)."""
        return {"paths": list(self.paths), "copies": [c.as_dict() for c in self.copies]}


def check_copy_options(threshold: Any, min_seconds: Any, neighbours: Any) -> None:
    """ValueError naming the argument, if one is outside what `find_copies` takes."""
    if not _number(threshold) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a number in (0, 1]. Received: threshold={threshold!r}")
    if not _number(min_seconds) or min_seconds <= 0:
        raise ValueError("min_seconds must be a positive number of seconds. Received: "
                         f"min_seconds={min_seconds!r}")  # fmt: skip
    if (
        isinstance(neighbours, bool)
        or not isinstance(neighbours, int | np.integer)
        or neighbours < 1
    ):
        raise ValueError(
            f"neighbours must be a positive integer. Received: neighbours={neighbours!r}"
        )


def _number(value: Any) -> bool:
    return (isinstance(value, int | float | np.number) and not isinstance(value, bool)
            and math.isfinite(value))  # fmt: skip


def find_copies(rows: Snapshot, *, stride: float | None, threshold: float = COPY_THRESHOLD,
                min_seconds: float = COPY_MIN_SECONDS, neighbours: int = COPY_NEIGHBOURS,
                path: str | None = None, ann: dict | None = None,
                ray: str | bool | None = None) -> list[CopyGroup]:  # fmt: skip
    """The copies among the rows of an index (see the module docstring).

    Args:
        rows: `Snapshot`. The index's rows at one version.
        stride: float or None. The windows' stride in seconds (the index's setting);
            None: the most common gap between a video's window starts.
        threshold: float in (0, 1]. The least centred similarity of two matched
            windows. Defaults to `constants.COPY_THRESHOLD`.
        min_seconds: float. The least length of a copy. Defaults to
            `constants.COPY_MIN_SECONDS`.
        neighbours: int. Matches kept per window (its nearest windows in other videos).
            Defaults to `constants.COPY_NEIGHBOURS`.
        path: str or None. Only the copies involving this video (its windows asked
            about, then those of the videos they match: the same copies of it as the
            whole run finds, but for a video that only the other side's windows find).
            Defaults to None (all).
        ann: dict or None. Search through the vector index: `uri`, `storage_options`,
            `version` of the table, and its number of `lists`. None: exact. Defaults to
            None.
        ray: str, bool or None. Run the blocks as Ray tasks: True or "local" for this
            process's Ray session (a new local instance if none), else a cluster's
            address. Defaults to None (in process).

    Returns:
        A list of `CopyGroup`, the most videos first; with `path`, at most one.
    """
    check_copy_options(threshold, min_seconds, neighbours)
    if not len(rows):
        return []
    centring = copy_search.Centring.of(rows.vectors)
    if ann is None:  # exact: one matrix product a block
        centring.held = centring.unit(rows.vectors)
    runner = _Runner(rows, centring, neighbours, threshold, ann, ray)
    with runner:
        if path is None:
            found = runner.matches(np.arange(len(rows)))
        else:
            mine = np.flatnonzero(rows.paths == path)
            if not len(mine):
                raise ValueError(
                    f"path is not in the index: give a video it holds, as its "
                    f"rows name it (`find_path`). Received: path={path!r}"
                )
            first = runner.matches(mine)
            partners = np.unique(rows.codes[np.concatenate([first[0], first[1]])])
            partners = partners[partners != rows.codes[mine[0]]]
            theirs = np.flatnonzero(np.isin(rows.codes, partners))
            second = runner.matches(theirs)
            found = tuple(np.concatenate(parts) for parts in zip(first, second, strict=True))
            code = rows.codes[mine[0]]
            keep = (rows.codes[found[0]] == code) | (rows.codes[found[1]] == code)
            found = tuple(part[keep] for part in found)
    # Each match scored again on its own: a matrix product's rounding depends on the
    # block's shape (and a Ray worker's BLAS threads), a pair's does not, so `path=` and
    # Ray give the very same scores as the whole run in process.
    queries, matched, _ = found
    plain = np.einsum("ij,ij->i", rows.vectors[queries], rows.vectors[matched])
    scores = centring.pairs(plain, queries, matched)
    keep = scores >= threshold
    found = queries[keep], matched[keep], scores[keep]
    if stride is None:
        stride = _stride_of(rows)
    copies = list(_copies(rows, *found, stride, min_seconds))
    groups = _groups(rows, copies)
    return groups


def find_path(rows: Snapshot, path: str | os.PathLike) -> str:
    """`path` as the index holds it (a file's real path); ValueError if it holds none."""
    given = os.fspath(path)
    for candidate in (given, os.path.realpath(given)):
        if (rows.paths == candidate).any():
            return candidate
    raise ValueError(f"path {given!r} is not in the index: give a video it holds (as "
                     "search hits show its path)")  # fmt: skip


class _Runner:
    """The query rows' matches, in blocks: in process, or as Ray tasks (`copy_ray.py`)."""

    def __init__(self, rows, centring, neighbours, threshold, ann, ray):
        self.rows, self.centring, self.neighbours, self.threshold = (
            rows,
            centring,
            neighbours,
            threshold,
        )
        self.ann, self.ray = ann, ray
        if ann is None:
            self.shared = ("exact", centring.held, rows.codes, neighbours, threshold)
        else:
            limit = neighbours * copy_search.ANN_CANDIDATES
            self.shared = ("ann", ann, limit, copy_search.ann_probes(ann["lists"]))
        self._session = self._remote = self._table = None

    def __enter__(self):
        if self.ray is not None and self.ray is not False:
            from . import copy_ray

            address = None if self.ray in (True, "local") else self.ray
            self._session = copy_ray.session(address)
            self._remote = self._session.__enter__()
            self._remote.share(self.shared)
        elif self.ann is not None:
            self._table = copy_search.open_table(self.ann)
        return self

    def __exit__(self, *exc):
        if self._session is not None:
            self._session.__exit__(*exc)

    def blocks(self, queries: np.ndarray) -> Iterator[np.ndarray]:
        """Exact: blocks of a bounded size. Through the vector index: one video's rows
        per block (they share the search's filter)."""
        if self.ann is None:
            size = copy_search.block_rows(len(self.rows))
            yield from (queries[i : i + size] for i in range(0, len(queries), size))
            return
        order = queries[np.argsort(self.rows.codes[queries], kind="stable")]
        codes = self.rows.codes[order]
        yield from np.split(order, np.flatnonzero(np.diff(codes)) + 1)

    def payload(self, block: np.ndarray):
        if self.ann is None:
            return block
        return self.rows.vectors[block], str(self.rows.paths[block[0]])

    def matches(self, queries: np.ndarray):
        blocks = [b for b in self.blocks(queries) if len(b)]
        payloads = (self.payload(b) for b in blocks)
        if self._remote is not None:
            parts = self._remote.run(payloads)
        else:
            parts = [copy_search.block_task(self.shared, p, self._table) for p in payloads]
        if self.ann is not None:  # candidates → matches, against the held vectors
            parts = [copy_search.ann_matches(self.rows, self.centring, b, *part, self.neighbours,
                                             self.threshold)
                     for b, part in zip(blocks, parts, strict=True)]  # fmt: skip
        if not parts:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float32)
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _stride_of(rows) -> float:
    """The most common gap between adjacent window starts of a video; 1 if none."""
    order = np.lexsort((rows.start_s, rows.codes))
    starts, codes = rows.start_s[order], rows.codes[order]
    gaps = np.diff(starts)[(np.diff(codes) == 0)]
    gaps = np.round(gaps[np.isfinite(gaps) & (gaps > 0)], 3)
    if not len(gaps):
        return 1.0
    values, counts = np.unique(gaps, return_counts=True)
    return float(values[np.argmax(counts)])


def _lengths(rows) -> np.ndarray:
    """Each video's length (by code): its duration, else its last window's end."""
    n = int(rows.codes.max()) + 1 if len(rows) else 0
    ends = np.where(np.isfinite(rows.duration_s), rows.duration_s,
                    np.where(np.isfinite(rows.end_s), rows.end_s, 0.0))  # fmt: skip
    lengths = np.zeros(n)
    np.maximum.at(lengths, rows.codes, ends)
    return lengths


def _names(rows) -> dict[int, str]:
    """Each video's path, by code (its first row's, found without a loop over rows)."""
    codes, first = np.unique(rows.codes, return_index=True)
    return dict(zip(codes.tolist(), map(str, rows.paths[first]), strict=True))


def _copies(rows, queries, matched, scores, stride, min_seconds) -> Iterator[Copy]:
    """Every copy between two videos, from the matches (each pair of windows once)."""
    if not len(queries):
        return
    n = len(rows)
    low, high = np.minimum(queries, matched), np.maximum(queries, matched)
    order = np.lexsort((-scores, low.astype(np.int64) * n + high))
    low, high, scores = low[order], high[order], scores[order]
    first = np.ones(len(low), bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    low, high, scores = low[first], high[first], scores[first]
    # a: the longer video, then the earlier path.
    codes = rows.codes
    lengths = _lengths(rows)
    names = _names(rows)
    rank = np.empty(len(lengths), np.int64)
    by = sorted(names, key=lambda c: (-lengths[c], names[c]))
    rank[by] = np.arange(len(by))
    swap = rank[codes[low]] > rank[codes[high]]
    a = np.where(swap, high, low)
    b = np.where(swap, low, high)
    pair = codes[a].astype(np.int64) * len(lengths) + codes[b]
    order = np.argsort(pair, kind="stable")
    a, b, scores, pair = a[order], b[order], scores[order], pair[order]
    whole = not np.isfinite(rows.start_s).any()
    for run in np.split(np.arange(len(pair)), np.flatnonzero(np.diff(pair)) + 1):
        pa, pb = names[int(codes[a[run[0]]])], names[int(codes[b[run[0]]])]
        if whole:
            la, lb = lengths[codes[a[run[0]]]], lengths[codes[b[run[0]]]]
            yield Copy(Span(pa, 0.0, la or math.nan), Span(pb, 0.0, lb or math.nan), 0.0,
                       float(scores[run].mean()))  # fmt: skip
            continue
        ia, ib = a[run], b[run]
        found = pair_runs(rows.start_s[ia], rows.end_s[ia], rows.start_s[ib], rows.end_s[ib],
                          scores[run], stride, min_seconds)  # fmt: skip
        for first_s, last_s, offset, score in found:
            yield Copy(Span(pa, first_s, last_s), Span(pb, first_s - offset, last_s - offset),
                       offset, score)  # fmt: skip


def _groups(rows, copies: list[Copy]) -> list[CopyGroup]:
    """The connected components of the videos linked by `copies`."""
    parent: dict[str, str] = {}

    def root(p):
        while parent.setdefault(p, p) != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for copy in copies:
        ra, rb = root(copy.a.path), root(copy.b.path)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    lengths = _lengths(rows)
    length_of = {name: lengths[code] for code, name in _names(rows).items()}
    members: dict[str, list[str]] = {}
    for p in parent:
        members.setdefault(root(p), []).append(p)
    linked: dict[str, list[Copy]] = {}
    for copy in copies:
        linked.setdefault(root(copy.a.path), []).append(copy)
    groups = []
    for key, paths in members.items():
        paths = sorted(paths, key=lambda p: (-length_of[p], p))
        found = sorted(linked[key], key=lambda c: (c.a.path, c.b.path, c.a.start_s))
        groups.append(CopyGroup(paths, found))
    return sorted(groups, key=lambda g: (-len(g.paths), g.paths[0]))
