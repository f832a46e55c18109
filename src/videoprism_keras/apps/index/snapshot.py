"""One version of the clips table held in memory: every clip's vector, and what a search
hit shows of it. Exact search is a matrix product over it; a held index (`in_memory`)
re-ranks the vector index's candidates against it.

A snapshot of a new version is made from the previous one: a row it held (the same Lance
row id and clip id: Lance never rewrites a row in place) keeps its vector, and only the
others are read, so a searcher beside a writer pays for the new rows only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lancedb.table import LanceTable

COLUMNS = ["id", "path", "start_s", "end_s", "duration_s"]  # what a hit shows
# A new snapshot reads all vectors again past this share of rows it does not hold: a scan
# reads a row several times faster than a take by row id (benchmarks/README.md, "Video
# index").
REREAD_SHARE = 0.15
TAKE_BATCH = 10_000  # row ids per take, rows per copy: a bounded temporary


class Snapshot:
    """The rows of a LanceDB clips table at one version, in memory.

    Args:
        table: `lancedb.table.LanceTable`. The clips table, checked out at `version`.
        version: int. The table version the snapshot holds.
        previous: `Snapshot` or None. A snapshot of an earlier version, whose rows are
            kept rather than read again. Defaults to None (every row read).

    Attributes:
        vectors: (N, D) float32 array. Every clip's vector.
        rowids, ids, paths: (N,) arrays. Lance row ids, clip ids, paths.
        start_s, end_s, duration_s: (N,) float arrays. Times in seconds, NaN where
            unknown.
        codes: (N,) int array. A small integer per path (the best clip of each video).
        read: int. Vectors this snapshot read from the table (the others were kept).
    """

    def __init__(self, table: LanceTable, version: int, previous: Snapshot | None = None):
        self.version = version
        self.dim = table.schema.field("vector").type.list_size
        if previous is not None:
            rows = (table.search().select(COLUMNS).with_row_id(True).limit(None)
                    .to_arrow())  # fmt: skip
            self._describe(rows)
            held = previous.positions(self.rowids, self.ids)
            missing = np.flatnonzero(held < 0)
            if len(missing) <= REREAD_SHARE * len(held):
                kept = len(held) - len(missing)
                if kept == len(previous.rowids) and np.array_equal(held[:kept], np.arange(kept)):
                    # Rows added, none gone: into the previous buffer, after its rows (a
                    # fresh buffer's first touch costs more than the whole search:
                    # benchmarks/README.md, "Video index").
                    self._buffer = previous._room_for(len(held))
                    self.vectors = self._buffer[: len(held)]
                else:
                    self._buffer = self.vectors = np.empty((len(held), self.dim), np.float32)
                    found = np.flatnonzero(held >= 0)
                    for start in range(0, len(found), TAKE_BATCH):
                        part = found[start : start + TAKE_BATCH]
                        self.vectors[part] = previous.vectors[held[part]]
                for start in range(0, len(missing), TAKE_BATCH):
                    part = missing[start : start + TAKE_BATCH]
                    taken = table.take_row_ids(self.rowids[part].tolist()).select(["vector"])
                    self.vectors[part] = self._matrix(taken.to_arrow()["vector"])
                self.read = len(missing)
                return
        self._read_all(table)

    def _read_all(self, table):
        import pyarrow as pa

        self._buffer = self.vectors = np.empty((table.count_rows(), self.dim), np.float32)
        columns, filled = [], 0
        query = table.search().select([*COLUMNS, "vector"]).with_row_id(True).limit(None)
        for batch in query.to_batches():  # batch by batch: one copy of the vectors in memory
            self.vectors[filled : filled + len(batch)] = self._matrix(batch["vector"])
            filled += len(batch)
            columns.append(batch.drop_columns(["vector"]))
        self.vectors = self.vectors[:filled]
        self.read = filled
        schema = pa.schema([(name, pa.string()) for name in ("id", "path")])
        self._describe(pa.Table.from_batches(columns) if columns else schema.empty_table())

    def _room_for(self, rows: int) -> np.ndarray:
        """This snapshot's buffer, with room for `rows` rows (grown by a quarter at least)."""
        if len(self._buffer) >= rows:
            return self._buffer
        grown = np.empty((max(rows, len(self._buffer) * 5 // 4), self.dim), np.float32)
        grown[: len(self.vectors)] = self.vectors
        return grown

    def _matrix(self, column):
        if hasattr(column, "combine_chunks"):  # a take's table column: chunked
            column = column.combine_chunks()
        flat = column.flatten().to_numpy(zero_copy_only=False) if len(column) else []
        return np.asarray(flat, np.float32).reshape(len(column), self.dim)

    def _describe(self, rows):
        import pyarrow as pa

        column = lambda name: (rows[name].combine_chunks() if name in rows.column_names  # noqa: E731
                               else pa.nulls(len(rows), pa.float64()))  # fmt: skip
        self.rowids = column("_rowid").to_numpy(zero_copy_only=False).astype(np.uint64)
        self.ids = column("id").to_numpy(zero_copy_only=False)
        self.paths = column("path").to_numpy(zero_copy_only=False)
        # Path → small integer, for the best clip of each video.
        self.codes = column("path").dictionary_encode().indices.to_numpy(zero_copy_only=False)
        nan = lambda name: column(name).cast(pa.float64()).fill_null(np.nan).to_numpy()  # noqa: E731
        self.start_s, self.end_s, self.duration_s = nan("start_s"), nan("end_s"), nan("duration_s")
        self._order = None

    def __len__(self) -> int:
        return len(self.rowids)

    def positions(self, rowids: np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Where each Lance row id (and clip id, if given) is in this snapshot; -1 where
        it is not.

        Args:
            rowids: (M,) uint64 array. Lance row ids.
            ids: (M,) array of str or None. Their clip ids, checked too. Defaults to None.
        """
        if not len(self.rowids):
            return np.full(len(rowids), -1)
        if self._order is None:  # the scan's order follows the fragments, not the row ids
            self._order = np.argsort(self.rowids, kind="stable")
            self._sorted = self.rowids[self._order]
        at = np.searchsorted(self._sorted, rowids)
        found = self._order[np.minimum(at, len(self._order) - 1)]
        same = self.rowids[found] == rowids
        if ids is not None:
            same &= self.ids[found] == ids
        return np.where(same, found, -1)
