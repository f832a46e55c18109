"""Result records merged into one table: a row per (model, dataset, task, metric), ours
beside the published number where there is one, and the difference; as Markdown and CSV.
No model and no Keras: records from anywhere are merged where they are.

Fractions are shown in percent, ranks as ranks. A (model, dataset, task) measured more
than once is shown from its newest record (by "created"; the later file given on a tie),
and the report says which records it passed over.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ...constants import EVAL_TASKS
from .published import SOURCE, published
from .results import is_rank, read_records

COLUMNS = ("model", "dataset", "task", "metric", "unit", "ours", "low", "high", "level",
           "used", "missing", "failed", "total", "published", "difference", "created",
           "file")  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One metric of one record, in the units shown ("%" for fractions, "rank")."""

    model: str
    dataset: str
    task: str
    metric: str
    unit: str
    ours: float
    low: float | None
    high: float | None
    level: float | None  # the interval's coverage (0.95)
    used: int
    missing: int
    failed: int
    total: int
    published: float | None
    difference: float | None  # ours - published, in the same units
    created: str
    file: str


@dataclass
class Report:
    """The merged table (`rows`) and what the reader must know about it (`notes`)."""

    rows: list[Row]
    notes: list[str]

    def markdown(self) -> str:
        return to_markdown(self)

    def csv(self) -> str:
        return to_csv(self)


def build_report(records: Sequence[tuple[Path, dict]]) -> Report:
    """The report of `records` ((file, record) pairs, as `results.read_records` gives)."""
    newest: dict[tuple[str, str, str], tuple[Path, dict]] = {}
    older: dict[tuple[str, str, str], list[Path]] = {}
    for path, record in records:
        key = (record["model"]["name"], record["dataset"]["name"], record["task"])
        kept = newest.get(key)
        if kept is not None and _created(kept[1]) > _created(record):
            older.setdefault(key, []).append(path)
            continue
        if kept is not None:
            older.setdefault(key, []).append(kept[0])
        newest[key] = (path, record)
    notes = []
    for key, passed in older.items():
        path, record = newest[key]
        others = ", ".join(map(str, passed))
        notes.append(f"{' · '.join(key)}: {len(passed) + 1} runs; the newest is shown "
                     f"({record['created']}, {path}), not {others}")  # fmt: skip
    order = lambda key: (_task_order(key[2]), key[1], key[0])  # noqa: E731
    rows = [row for key in sorted(newest, key=order) for row in _rows(*newest[key])]
    if any(row.published is not None for row in rows):
        notes.append(f"published: the official checkpoints' numbers ({SOURCE})")
    return Report(rows, notes)


def report_of(paths: Iterable[str | os.PathLike]) -> Report:
    """The report of the records in `paths` (JSON files, or folders of them)."""
    return build_report(read_records(paths))


def _created(record: dict) -> datetime:
    try:
        created = datetime.fromisoformat(record["created"])
    except ValueError:  # not a time: such a record is the oldest
        return datetime.min.replace(tzinfo=UTC)
    return created if created.tzinfo else created.replace(tzinfo=UTC)  # ours say UTC


def _task_order(task: str) -> int:
    return EVAL_TASKS.index(task) if task in EVAL_TASKS else len(EVAL_TASKS)


def _rows(path: Path, record: dict) -> list[Row]:
    model, dataset, task = record["model"], record["dataset"]["name"], record["task"]
    items, level = record["items"], record["bootstrap"].get("level")
    rows = []
    for metric, value in record["metrics"].items():
        scale, unit = (1.0, "rank") if is_rank(metric) else (100.0, "%")
        low, high = record["intervals"].get(metric, (None, None))
        number = published(model, dataset, task, metric)
        ours = _round(value * scale)
        rows.append(Row(
            model=model["name"], dataset=dataset, task=task, metric=metric, unit=unit,
            ours=ours, low=_round(low, scale), high=_round(high, scale),
            level=level if low is not None else None, used=items["used"],
            missing=items["missing"], failed=items["failed"], total=items["total"],
            published=number, difference=None if number is None else _round(ours - number),
            created=record["created"], file=str(path),
        ))  # fmt: skip
    return rows


def _round(value: float | None, scale: float = 1.0) -> float | None:
    """In the units shown, to 6 decimals: 0.501 is 50.1, not 50.099999999999994."""
    return None if value is None else round(value * scale, 6)


def _number(value: float | None, form: str = ".2f") -> str:
    return "" if value is None else format(value, form)


def to_markdown(report: Report) -> str:
    """The report as a Markdown table, its notes below."""
    header = ("model", "dataset", "task", "metric", "ours", "interval", "used / total",
              "missing", "failed", "published", "difference")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        interval = "" if row.low is None else f"{_number(row.low)} – {_number(row.high)}"
        if interval and row.level is not None:
            interval += f" ({row.level * 100:g}%)"
        unit = " %" if row.unit == "%" else ""
        cells = (row.model, row.dataset, row.task, row.metric, _number(row.ours) + unit,
                 interval, f"{row.used} / {row.total}", str(row.missing), str(row.failed),
                 _number(row.published, ".1f"), _number(row.difference, "+.2f"))  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- {note}" for note in report.notes]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def to_csv(report: Report) -> str:
    """The report as CSV: one line per row, the `COLUMNS`, numbers unformatted."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return out.getvalue()
