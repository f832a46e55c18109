"""The result record of one evaluation: one JSON per (model, dataset, task, settings), as
clip_benchmark writes them, with everything needed to compare two runs (the data and how
much of it was used, what was missing, the model and its adapters, the sampling and the
settings with their key, the bootstrap, the package versions). No model and no Keras here:
`videoprism eval report` reads records anywhere.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...constants import (
    EVAL_FILE_CHARACTERS,
    EVAL_FILE_SEPARATOR,
    EVAL_RANK_METRICS,
    EVAL_RECORD_SCHEMA,
    EVAL_SETTINGS_KEY_DIGITS,
    EVAL_SETTINGS_OUTCOMES,
    EVAL_TASKS,
    VERSION,
)
from .published import preset_of

if TYPE_CHECKING:
    from .datasets import Dataset

MODEL_FIELDS = ("name", "source", "dtype", "lora", "key")
# The record's fields, and the type each must have (`read_records` checks them).
RECORD_FIELDS = {"schema": int, "task": str, "dataset": dict, "model": dict, "sampling": dict,
                 "items": dict, "missing": list, "metrics": dict, "intervals": dict,
                 "bootstrap": dict, "settings": dict, "settings_key": str, "versions": dict,
                 "created": str}  # fmt: skip
# Fields a record written before they were added lacks: read as these (the settings key is
# computed from the record's sampling and settings).
_LATER_FIELDS = {"missing": list, "settings_key": str}
_UNSAFE = re.compile(f"[^{EVAL_FILE_CHARACTERS}]+")
# The package of each backend, whose version the record holds.
_BACKEND_PACKAGES = {"jax": ("jax",), "torch": ("torch",),
                     "tensorflow": ("tensorflow", "tensorflow-cpu")}  # fmt: skip


def is_rank(metric: str) -> bool:
    """Whether `metric` is a rank (shown as is), not a fraction in [0, 1]."""
    return metric.endswith(EVAL_RANK_METRICS)


def model_info(source: str, dtype: str, lora: Sequence[str] = (), key: str = "",
               engine: str = "keras") -> dict:  # fmt: skip
    """The record's "model": what was measured, by name, and how it was loaded.

    Args:
        source: str. The preset as given: a preset name, a path, or a handle (hf://…).
        dtype: str. The compute dtype.
        lora: sequence of str. The LoRA adapter files applied, in order.
        key: str. The embedding cache's key of these weights (`cache.model_key`).
        engine: str. What ran the model ("keras", "openvino", "onnxruntime").

    Returns:
        dict with "name" (the preset's name for an official checkpoint however given, else
        the source's last part, with the dtype where it is not float32, the engine where
        it is not Keras, and each adapter's stem; two checkpoints of one file name share
        it, their "key" tells them apart), "source", "dtype", "engine", "lora" and "key".
    """
    base = str(source).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    name = preset_of(source) or base.removesuffix(".npz") or str(source)
    if dtype != "float32":
        name += f"@{dtype}"
    if engine != "keras":
        name += f"-{engine}"
    for adapter in lora:
        name += "+" + Path(str(adapter)).stem
    return {"name": name, "source": str(source), "dtype": dtype, "engine": engine,
            "lora": [str(a) for a in lora], "key": key}  # fmt: skip


def make_record(*, task: str, dataset: Dataset, metrics: dict[str, float],
                intervals: dict[str, tuple[float, float]], model: dict, sampling: dict,
                bootstrap: dict, settings: dict | None = None,
                failed: int = 0) -> dict:  # fmt: skip
    """One evaluation's result record (see the module docstring; `write_record` saves it).

    Args:
        task: str. One of "retrieval", "classification", "probe", "moments".
        dataset: `datasets.Dataset`. What was evaluated: its name, format, annotation file,
            protocol, present clips, missing videos (listed in the record's "missing"),
            the queries of those (`missing_queries`, "items.missing_queries") and total.
        metrics: dict of str to float. Fractions in [0, 1]; ranks (names ending in MdR or
            MnR) as ranks.
        intervals: dict of str to (low, high). The bootstrap interval of some metrics, in
            the metrics' units.
        model: dict. From `model_info`.
        sampling: dict. "num_frames" and "size" (None: the model's), and any other setting
            of how clips were read.
        bootstrap: dict. "samples", "level" and "seed" of the intervals.
        settings: dict. The task's own settings (prompt templates, probe epochs, …).
        failed: int. Present clips that could not be read (not evaluated).

    Returns:
        dict, ready for `json.dump`; its "settings_key" is `settings_key(sampling,
        settings)`.
    """
    if task not in EVAL_TASKS:
        raise ValueError(f"task: expected one of {', '.join(EVAL_TASKS)}. Received: {task!r}")
    missing = [f for f in MODEL_FIELDS if f not in model]
    if missing:
        raise ValueError(f"model: expected the fields of model_info ({', '.join(MODEL_FIELDS)})"
                         f". Received: no {', '.join(missing)}")  # fmt: skip
    clips = len(dataset.clips)
    if not 0 <= failed <= clips:
        raise ValueError(f"failed: expected 0 to {clips} (the present clips). Received: {failed}")
    about = {"name": dataset.name, "format": dataset.format,
             "annotations": str(dataset.annotations), "protocol": dataset.protocol}  # fmt: skip
    # A dataset read before `missing_queries` was a field has none to tell.
    items = {"used": clips - failed, "missing": len(dataset.missing), "failed": failed,
             "total": dataset.total,
             "missing_queries": int(getattr(dataset, "missing_queries", 0))}  # fmt: skip
    sampling = {"num_frames": None, "size": None, **sampling}
    settings = dict(settings or {})
    return {
        "schema": EVAL_RECORD_SCHEMA,
        "task": task,
        "dataset": about,
        "model": {**model, "lora": list(model["lora"])},
        "sampling": sampling,
        "items": items,
        "missing": [str(path) for path in dataset.missing],
        "metrics": {name: _metric(name, value, "metrics") for name, value in metrics.items()},
        "intervals": {name: _interval(name, pair) for name, pair in intervals.items()},
        "bootstrap": {"samples": None, "level": None, "seed": None, **bootstrap},
        "settings": settings,
        "settings_key": settings_key(sampling, settings),
        "versions": versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _metric(name: str, value, where: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{where}[{name!r}]: expected a finite number. Received: {value!r}")
    if not is_rank(name) and not 0.0 <= value <= 1.0:
        # A record holds fractions, as metrics.py answers: one unit for every task.
        raise ValueError(f"{where}[{name!r}]: expected a fraction in [0, 1] (divide a percent "
                         f"by 100). Received: {value!r}")  # fmt: skip
    return value


def _interval(name: str, pair) -> list[float]:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise ValueError(f"intervals[{name!r}]: expected (low, high). Received: {pair!r}")
    low, high = (_metric(name, value, "intervals") for value in pair)
    if low > high:
        raise ValueError(f"intervals[{name!r}]: expected low <= high. Received: {pair!r}")
    return [low, high]


def versions() -> dict:
    """The versions a result depends on: ours, Keras, the backend, numpy, LanceDB, Python,
    the platform. Read from the installed packages: nothing is imported for it."""
    backend = _backend()
    packages = _BACKEND_PACKAGES.get(backend or "", ())
    backend_version = next((v for v in map(_version, packages) if v), None)
    return {"videoprism_keras": VERSION, "keras": _version("keras"), "backend": backend,
            "backend_version": backend_version, "numpy": _version("numpy"),
            "lancedb": _version("lancedb"), "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


def _backend() -> str | None:
    keras = sys.modules.get("keras")
    if keras is not None:  # loaded: what it runs on, whatever the environment says now
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def settings_key(sampling: dict, settings: dict) -> str:
    """A short hash of how a run was asked to run: its sampling and its settings, less the
    entries that say what it found (`EVAL_SETTINGS_OUTCOMES`: counts, losses), so a run
    again with the same settings has the same key and one with others (templates, frames,
    size, token grid, epochs, refine…) another.

    Args:
        sampling: dict. A record's "sampling".
        settings: dict. A record's "settings".

    Returns:
        `EVAL_SETTINGS_KEY_DIGITS` hex digits.
    """
    text = json.dumps({"sampling": chosen_settings(sampling),
                       "settings": chosen_settings(settings)},
                      sort_keys=True, default=str, separators=(",", ":"))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:EVAL_SETTINGS_KEY_DIGITS]


def chosen_settings(value: Any) -> Any:
    """`value` (a record's sampling or settings) without its outcome entries
    (`EVAL_SETTINGS_OUTCOMES`, at any depth), tuples as lists (as JSON holds them)."""
    if isinstance(value, dict):
        return {str(k): chosen_settings(v) for k, v in value.items()
                if k not in EVAL_SETTINGS_OUTCOMES}  # fmt: skip
    if isinstance(value, list | tuple):
        return [chosen_settings(v) for v in value]
    return value


def record_settings_key(record: dict) -> str:
    """The record's settings key; computed for a record written before it had one."""
    return record.get("settings_key") or settings_key(record["sampling"], record["settings"])


def record_name(record: dict) -> str:
    """The record's file name, sanitised: "<model>__<dataset>__<key>__<task>.json", the key
    the model key's first `EVAL_SETTINGS_KEY_DIGITS` digits (where the record has one: two
    checkpoints of one file name are two models), "-" and the settings key."""
    model_key = str(record["model"].get("key") or "")[:EVAL_SETTINGS_KEY_DIGITS]
    keys = "-".join(k for k in (model_key, record_settings_key(record)) if k)
    parts = (record["model"]["name"], record["dataset"]["name"], keys, record["task"])
    return EVAL_FILE_SEPARATOR.join(_UNSAFE.sub("_", str(p)).strip("_") or "_"
                                    for p in parts) + ".json"  # fmt: skip


def write_record(record: dict, folder: str | os.PathLike) -> Path:
    """Writes `record` into `folder` (made if absent) as `record_name(record)`, atomically:
    to a temporary file there, then renamed over the name, so a reader never sees half a
    file and a run of the same (model, dataset, task, settings) replaces the last one whole.

    Args:
        record: dict. From `make_record`.
        folder: str or path. Where to write it.

    Returns:
        The file's path.
    """
    path = Path(folder) / record_name(record)
    return write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Writes `text` to `path` (its folder made if absent) atomically: to a temporary file
    beside it, then renamed over it. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_records(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, dict]]:
    """The records in `paths`: JSON files, or folders whose *.json files are read.

    Returns:
        (file, record) pairs, in the order given (a folder's files by name), each file
        once.

    Raises:
        ValueError: naming the file, if one is not a readable JSON record of this schema,
            or naming the folder, if it holds none.
    """
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
            if not found:
                raise ValueError(f"{path}: expected result JSON files (videoprism eval … -o) "
                                 "in the folder. Received: none")  # fmt: skip
            files += found
        else:
            files.append(path)
    if not files:
        raise ValueError("expected result JSON files or folders. Received: none")
    unique: dict[Path, Path] = {}  # a file named twice (itself and its folder): read once
    for path in files:
        unique.setdefault(path.resolve(), path)
    return [(path, read_record(path)) for path in unique.values()]


def read_record(path: str | os.PathLike) -> dict:
    """One record file, checked (see `read_records`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: expected a result JSON file. Received: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: expected a readable result JSON file. Received: "
                         f"{type(err).__name__}: {err}") from None  # fmt: skip
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: expected a result JSON file. Received: not JSON ({err})") \
            from None  # fmt: skip
    problem = _schema_problem(record)
    if problem:
        raise ValueError(f"{path}: expected a result record of schema {EVAL_RECORD_SCHEMA} "
                         f"(videoprism eval … -o). Received: {problem}")  # fmt: skip
    record.setdefault("missing", [])  # written before the fields were: what they would say
    record["settings_key"] = record_settings_key(record)
    record["items"].setdefault("missing_queries", 0)
    return record


def _schema_problem(record: Any) -> str:
    """What makes `record` no record of our schema, in words ("" if nothing)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if record.get("schema") != EVAL_RECORD_SCHEMA:
        return f"schema {record.get('schema')!r}"
    for field, kind in RECORD_FIELDS.items():
        if field in _LATER_FIELDS and field not in record:
            continue
        if not isinstance(record.get(field), kind):
            return f"no {field} ({kind.__name__})" if field not in record else \
                f"{field} is a {type(record[field]).__name__}, not a {kind.__name__}"  # fmt: skip
    if record["task"] not in EVAL_TASKS:
        return f"task {record['task']!r}"
    for part, fields in (("model", MODEL_FIELDS), ("dataset", ("name",)),
                         ("items", ("used", "missing", "failed", "total"))):  # fmt: skip
        absent = [f for f in fields if f not in record[part]]
        if absent:
            return f"no {part}.{absent[0]}"
    for name, value in record["metrics"].items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"metrics.{name} is {value!r}, not a number"
    for name, pair in record["intervals"].items():
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(v, int | float) for v in pair)):  # fmt: skip
            return f"intervals.{name} is {pair!r}, not [low, high]"
    return ""
