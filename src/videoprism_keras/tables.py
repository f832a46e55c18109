"""Annotation tables as users write them: a CSV with a header line, or a parquet file →
a list of rows (column → value). Read by `finetune`'s pairs file and `eval`'s datasets;
importing this module loads nothing else (pyarrow only for a parquet file)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .extras import require


def table_rows(path: str | os.PathLike, purpose: str = "a .parquet table",
               numbered: bool = False) -> list:  # fmt: skip
    """The rows of a `.parquet` file, or of a CSV (any other suffix) with a header line.

    A CSV may start with a byte-order mark (Excel's UTF-8 CSVs do); its values are text,
    a parquet file's as stored (None for an empty cell).

    Args:
        path: str or path. The table.
        purpose: str. What needs pyarrow, for the message when it is missing.
        numbered: bool. Each row as (where, row): "line N" of a CSV (its last line, as
            the csv module counts: a quoted value may span lines), "row N" (1-based) of a
            parquet file. Defaults to `False`: the rows alone.

    Raises:
        ValueError: naming the file, when it is not a readable UTF-8 CSV or parquet file.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        require(("pyarrow",), purpose)
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"{path}: not a readable parquet file ({err})") from None
        return [(f"row {i}", row) for i, row in enumerate(rows, start=1)] if numbered else rows
    try:
        # utf-8-sig: a BOM would otherwise glue onto the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if numbered:
                return [(f"line {reader.line_num}", row) for row in reader]
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a readable UTF-8 CSV file ({err})") from None
