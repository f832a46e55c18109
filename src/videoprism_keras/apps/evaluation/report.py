"""Result records merged into one table: a row per (model, dataset, task, settings,
metric), ours beside the published number where there is one, and the difference; as
Markdown and CSV. No model and no Keras: records from anywhere are merged where they are.

Fractions are shown in percent, ranks as ranks. Runs are told apart by the model's name
and key (its weights), the dataset, the task and the settings key: runs of one model on
one dataset and task with other settings (templates, frames, size, …) are rows of their
own, their "settings" cell naming what differs between them. One of those measured more
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
from .published import NOTES, SOURCE, dataset_name, own_sampling, preset_of, published
from .results import chosen_settings, is_rank, read_records

COLUMNS = ("model", "model_key", "dataset", "task", "settings", "settings_key", "metric",
           "unit", "ours", "low", "high", "level", "used", "missing", "missing_queries",
           "failed", "total", "published", "difference", "created", "file")  # fmt: skip
# A setting's value longer than this is shown by its length ("templates=9 items").
_SHOWN_CHARACTERS = 40


@dataclass(frozen=True)
class Row:
    """One metric of one record, in the units shown ("%" for fractions, "rank")."""

    model: str
    model_key: str
    dataset: str
    task: str
    settings: str  # what sets this run apart from the others of its model, dataset, task
    settings_key: str
    metric: str
    unit: str
    ours: float
    low: float | None
    high: float | None
    level: float | None  # the interval's coverage (0.95)
    used: int
    missing: int
    missing_queries: int  # captions or moment queries of the missing videos
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


Key = tuple[str, str, str, str, str]  # model name, model key, dataset, task, settings key


def build_report(records: Sequence[tuple[Path, dict]]) -> Report:
    """The report of `records` ((file, record) pairs, as `results.read_records` gives).

    Args:
        records: sequence of (path, dict). The records and the files they were read from.

    Returns:
        `Report`: its rows ordered by task, dataset, model; notes on runs passed over,
        published numbers not compared (another sampling) and assumed.
    """
    newest: dict[Key, tuple[Path, dict]] = {}
    older: dict[Key, list[Path]] = {}
    for path, record in records:
        key = _key(record)
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
        notes.append(f"{_label(key)}: {len(passed) + 1} runs; the newest is shown "
                     f"({record['created']}, {path}), not {others}")  # fmt: skip
    differing = _differing({key: record for key, (_, record) in newest.items()})
    order = lambda key: (_task_order(key[3]), key[2], key[0], key[1], differing[key])  # noqa: E731
    rows = []
    for key in sorted(newest, key=order):
        rows += _rows(*newest[key], differing[key])
        if _other_sampling(newest[key][1]):
            notes.append(f"{_label(key)}: sampled at {_sampling(newest[key][1])}, not the "
                         "preset's own: no published number is set beside it")  # fmt: skip
    if any(row.published is not None for row in rows):
        notes.append(f"published: the official checkpoints' numbers ({SOURCE})")
    assumed = {(dataset_name(r.dataset), r.task, r.metric) for r in rows if r.published is not None}
    notes += [note for shown, note in NOTES.items() if shown in assumed]
    return Report(rows, notes)


def _key(record: dict) -> Key:
    model = record["model"]
    return (model["name"], str(model.get("key") or ""), record["dataset"]["name"],
            record["task"], record["settings_key"])  # fmt: skip


def _label(key: Key) -> str:
    """A run's name in the notes: model (key), dataset, task, settings key."""
    name, model_key, dataset, task, settings = key
    model = f"{name} ({model_key})" if model_key else name
    return " · ".join((model, dataset, task, f"settings {settings}"))


def _differing(records: dict[Key, dict]) -> dict[Key, str]:
    """Per run, "name=value; …" of the sampling and settings (and the model key) where the
    runs of its model name, dataset and task differ ("" where it is the only one)."""
    fields = {key: _fields(record) for key, record in records.items()}
    groups: dict[tuple[str, str, str], list[Key]] = {}
    for key in records:
        groups.setdefault((key[0], key[2], key[3]), []).append(key)
    shown = {}
    for keys in groups.values():
        names = sorted({name for key in keys for name in fields[key]})
        differ = [n for n in names if len({repr(fields[k].get(n)) for k in keys}) > 1]
        for key in keys:
            shown[key] = "; ".join(f"{n}={_shown(fields[key].get(n))}" for n in differ)
    return shown


def _fields(record: dict) -> dict[str, object]:
    """The record's model key, sampling and chosen settings, flat ("attentive.epochs")."""
    flat = {"model key": record["model"].get("key") or None}

    def add(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                add(f"{prefix}.{name}" if prefix else str(name), inner)
        else:
            flat[prefix] = value

    add("", chosen_settings(record["sampling"]))
    add("", chosen_settings(record["settings"]))
    return flat


def _shown(value: object) -> str:
    if isinstance(value, list):
        text = ",".join(map(str, value))
        return text if len(text) <= _SHOWN_CHARACTERS else f"{len(value)} items"
    text = "-" if value is None else str(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 1] + "…"


def _other_sampling(record: dict) -> bool:
    """Whether `record` is of a released preset, whose published numbers it would match,
    but sampled otherwise than the preset's own."""
    model = record["model"]
    preset = preset_of(model.get("source", ""))
    return (preset is not None and not model.get("lora")
            and not own_sampling(preset, record["sampling"]))  # fmt: skip


def _sampling(record: dict) -> str:
    """The sampling in words ("8 frames of 288"), the model's where the record leaves it."""
    sampling = record["sampling"]
    frames, size = sampling.get("num_frames"), sampling.get("size")
    size = "×".join(map(str, size)) if isinstance(size, list) else size
    frames = "the model's" if frames is None else frames
    return f"{frames} frames of {'its size' if size is None else size}"


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


def _rows(path: Path, record: dict, settings: str) -> list[Row]:
    model, dataset, task = record["model"], record["dataset"]["name"], record["task"]
    items, level = record["items"], record["bootstrap"].get("level")
    rows = []
    for metric, value in record["metrics"].items():
        scale, unit = (1.0, "rank") if is_rank(metric) else (100.0, "%")
        low, high = record["intervals"].get(metric, (None, None))
        number = published(model, dataset, task, metric, record["sampling"])
        ours = _round(value * scale)
        rows.append(Row(
            model=model["name"], model_key=str(model.get("key") or ""), dataset=dataset,
            task=task, settings=settings, settings_key=record["settings_key"], metric=metric,
            unit=unit, ours=ours, low=_round(low, scale), high=_round(high, scale),
            level=level if low is not None else None, used=items["used"],
            missing=items["missing"], missing_queries=items.get("missing_queries", 0),
            failed=items["failed"], total=items["total"],
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
    header = ("model", "dataset", "task", "settings", "metric", "ours", "interval",
              "used / total", "missing", "failed", "published", "difference")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        interval = "" if row.low is None else f"{_number(row.low)} – {_number(row.high)}"
        if interval and row.level is not None:
            interval += f" ({row.level * 100:g}%)"
        unit = " %" if row.unit == "%" else ""
        missing = str(row.missing)
        if row.missing_queries:
            missing += f" ({row.missing_queries} queries)"
        cells = (row.model, row.dataset, row.task, row.settings, row.metric,
                 _number(row.ours) + unit, interval, f"{row.used} / {row.total}", missing,
                 str(row.failed), _number(row.published, ".1f"),
                 _number(row.difference, "+.2f"))  # fmt: skip
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
