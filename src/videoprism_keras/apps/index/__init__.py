"""The video index: clip embeddings in a LanceDB table, searched by similarity.

The files, one job each:

- `video_index.py`: `VideoIndex`, what people do with an index: add videos, search, save;
- `table.py`: `ClipTable`, the table: opening or creating it, settings, writes, `stats`;
- `writer.py`: `IndexWriter`, the write protocol every writer of clips goes through;
- `search.py`: exact search, the vector index's search, the re-ranking of its candidates;
- `moments.py`: the coarse stage of a moment search: every video's similarity curve;
- `snapshot.py`: one table version's vectors held in memory, for exact search;
- `ann.py`: the LanceDB vector index: its parameters, how deep a search goes;
- `maintenance.py`: the upkeep: when a pass (compaction, vector index, old versions) is
  due, and which old versions may be deleted without failing a reader;
- `store.py`: the table's layout, lock, failures table and errors;
- `commits.py`: commits that other writers' commits got in the way of, tried again;
- `legacy.py`: the previous format (`vectors.npy` + `index.json`), converted in place.
"""

from ...constants import ANN_THRESHOLD
from .ann import ANN_REFINE_FACTOR
from .search import SearchHit
from .table import ClipTable, IndexedClip, IndexStats
from .video_index import VideoIndex
from .writer import IndexWriter

__all__ = ["ANN_REFINE_FACTOR", "ANN_THRESHOLD", "ClipTable", "IndexStats", "IndexWriter",
           "IndexedClip", "SearchHit", "VideoIndex"]  # fmt: skip
