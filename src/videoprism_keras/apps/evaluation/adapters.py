"""The benchmarks' own annotation files → the clips they name, before any video is looked for.

Each reader takes the file as its download has it and says which clips (or spans) the
benchmark evaluates and what counts as relevant; `datasets.read_dataset` then looks the
videos up in the user's folder and counts the missing ones. Nothing here opens a video.

    msrvtt        MSRVTT_JSFUSION_test.csv (key,vid_key,video_id,sentence)
    vatex         vatex_validation_v1.0.json (+ the 1,500-video test list)
    activitynet   val_1.json / val_2.json of ActivityNet Captions
    kinetics      the Kinetics-400/600 CSV (label,youtube_id,time_start,time_end,split)
    ssv2          something-something-v2-validation.json + -labels.json
    charades      Charades_v1_test.csv + Charades_v1_classes.txt
    charades-sta  charades_sta_test.txt ("<id> <start> <end>##<sentence>")
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...extras import require


@dataclass(frozen=True)
class Item:
    """One clip an annotation file names, with what it is annotated with.

    `names` are where its video may lie, relative to the videos folder, in the order
    tried; the first is the one reported when none is found. A name without a video suffix
    matches that name with any video suffix.
    """

    names: tuple[str, ...]
    start_s: float | None = None
    end_s: float | None = None
    captions: tuple[str, ...] = ()  # retrieval
    labels: tuple[str, ...] = ()  # classification: class names (of `Annotations.labels`)
    moments: tuple[tuple[str, float, float], ...] = ()  # moments: (query, start_s, end_s)


@dataclass
class Annotations:
    """What an annotation file says, before the videos are looked for."""

    name: str
    task: str
    protocol: str
    items: list[Item]
    labels: list[str] = field(default_factory=list)  # the class names, index order
    multi_label: bool = False


Row = tuple[str, dict]  # (where in the file: "line 3" / "row 2", the row's fields)


def read_rows(path: str | os.PathLike) -> list[Row]:
    """A CSV (with a header line) or parquet file → its rows, each with where it is.

    A CSV may start with a byte-order mark (Excel's UTF-8). A CSV row's place is its line
    ("line 2" is the first after the header), a parquet row's its 1-based number.

    Raises:
        ValueError: naming the file, when it cannot be read or holds no rows.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        require(("pyarrow",), "a .parquet annotation file")
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"{path}: not a readable parquet file ({err})") from None
        found = [(f"row {i}", row) for i, row in enumerate(rows, start=1)]
    else:
        try:
            # utf-8-sig: Excel's UTF-8 CSVs start with a BOM, which would glue onto a name.
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                found = [(f"line {reader.line_num}", row) for row in reader]
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{path}: not a readable UTF-8 CSV file ({err})") from None
    if not found:
        raise ValueError(f"{path}: no rows; expected a header line and one row per item")
    return found


def require_columns(path: Path, rows: list[Row], needed: tuple[str, ...]) -> None:
    """A ValueError naming the file and the columns expected, where one is absent."""
    present = set(rows[0][1])
    if not set(needed) <= present:
        raise ValueError(f"{path}: expected columns {','.join(needed)}. "
                         f"Received: {','.join(map(str, rows[0][1])) or 'none'}")  # fmt: skip


def text(path: Path, where: str, row: dict, column: str) -> str:
    """A non-empty text field, stripped."""
    value = row.get(column)
    value = "" if value is None else str(value).strip()
    if not value:
        raise ValueError(f"{path}, {where}: {column} is empty; expected text")
    return value


def seconds(path: Path, where: str, column: str, value) -> float | None:
    """A time in seconds (None where the field is empty), or a ValueError naming it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, float) and math.isnan(value):  # parquet's empty cell
        return None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{path}, {where}: {column} must be seconds >= 0. "
                         f"Received: {value!r}")  # fmt: skip
    return number


def span(path: Path, where: str, start, end, names=("start_s", "end_s")):
    """(start_s, end_s) of a row: both empty (the whole video) or 0 <= start < end."""
    start, end = seconds(path, where, names[0], start), seconds(path, where, names[1], end)
    if (start is None) != (end is None):
        raise ValueError(f"{path}, {where}: {names[0]} and {names[1]} must both be given "
                         f"or both be empty. Received: {start!r}, {end!r}")  # fmt: skip
    if start is not None and not start < end:
        raise ValueError(f"{path}, {where}: needs {names[0]} < {names[1]}. "
                         f"Received: {start:g}, {end:g}")  # fmt: skip
    return start, end


def no_split(path: Path, format: str, split: str | None) -> None:
    if split is not None:
        raise ValueError(f"{path}: a {format} file holds one split; split is not used. "
                         f"Received: split={split!r}")  # fmt: skip


# ----------------------------------------------------------------------- MSR-VTT
def read_msrvtt(path: Path, split: str | None) -> Annotations:
    """MSR-VTT 1k-A: MSRVTT_JSFUSION_test.csv (from the JSFusion split, as in the
    msrvtt_data download of CLIP4Clip and others); videos video<N>.mp4 from MSRVTT.zip."""
    no_split(path, "msrvtt", split)
    rows = read_rows(path)
    require_columns(path, rows, ("video_id", "sentence"))
    items = [Item((text(path, where, row, "video_id"),),
                  captions=(text(path, where, row, "sentence"),))
             for where, row in rows]  # fmt: skip
    return Annotations("msrvtt-1k-a", "retrieval", (
        "MSR-VTT 1k-A (JSFusion test): each video has the one caption its row gives; "
        "text→video ranks the videos for each caption, video→text the captions for each "
        "video"), items)  # fmt: skip


ADAPTERS: dict[str, Callable[[Path, str | None], Annotations]] = {
    "msrvtt": read_msrvtt,
}


def infer_format(name: str) -> str:
    """The format a file name says (case-insensitive), or "csv"."""
    lower = name.lower()
    if "msrvtt" in lower or "msr-vtt" in lower or "msr_vtt" in lower:
        return "msrvtt"
    return "csv"
