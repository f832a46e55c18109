"""The clips table's LanceDB vector index: with which parameters it is built and how deep
a search goes by default.

Search is exact until the table reaches the index's `ann_threshold` rows; then a vector
index is built once and kept up to date, whatever the threshold, by maintenance
(`maintenance.py`). The parameters were chosen with
benchmarks/index_search.py (figures and the choice: benchmarks/README.md, "Video index").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lancedb.index import IndexConfig, IvfRq
    from lancedb.table import LanceTable

# IVF-RQ (RaBitQ: one bit per dimension, 96 bytes a 768-d vector): a higher recall than
# IVF-PQ at a lower latency, and a faster build.
# Few long lists, most of them probed: on the benchmark's vectors (spread over a 64-d
# sphere, the hard case) recall follows the share of rows scanned whatever the lists, and
# each list probed costs Lance a fixed overhead, so √N/4 lists beat √N.
ANN_PARTITIONS_PER_SQRT_ROW = 0.25  # IVF lists: √N / 4
ANN_MIN_PARTITIONS, ANN_MIN_LIST_ROWS = 256, 500
ANN_ITERATIONS = 20  # k-means iterations: more buy no recall, only build time
ANN_SAMPLE_RATE = 64  # k-means sample: rows per list
ANN_PROBED_SHARE = 0.65  # lists searched per query, as a share of the lists
ANN_REFINE_FACTOR = 30  # candidates re-ranked exactly: top_k × this


def find(table: LanceTable) -> IndexConfig | None:
    """The table's vector index (a `lancedb` `IndexConfig`), or None."""
    return next((i for i in table.list_indices() if "vector" in getattr(i, "columns", [])),
                None)  # fmt: skip


def partitions(rows: int) -> int:
    """√N/4 lists, but no fewer than ANN_MIN_PARTITIONS once each can have
    ANN_MIN_LIST_ROWS rows: at a given share probed, recall grows with the lists."""
    floor = min(ANN_MIN_PARTITIONS, rows // ANN_MIN_LIST_ROWS)
    return max(16, floor, int(ANN_PARTITIONS_PER_SQRT_ROW * math.sqrt(rows)))


def default_nprobes(rows: int) -> int:
    """Lists searched per query in a table of `rows` rows: ANN_PROBED_SHARE of the lists an
    index of that size has (its lists were made for fewer rows, or as many: no fewer are
    probed)."""
    return math.ceil(ANN_PROBED_SHARE * partitions(rows))


def ann_config(rows: int) -> IvfRq:
    """The vector index's parameters for a table of `rows` rows."""
    from lancedb.index import IvfRq

    return IvfRq(distance_type="dot", num_partitions=partitions(rows), num_bits=1,
                 max_iterations=ANN_ITERATIONS, sample_rate=ANN_SAMPLE_RATE)  # fmt: skip
