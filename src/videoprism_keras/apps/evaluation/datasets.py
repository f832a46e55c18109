"""A dataset as the user has it on disk → the clips to embed and what is relevant to each.

    dataset = read_dataset("MSRVTT_JSFUSION_test.csv", videos="MSRVTT/videos/all")
    dataset = read_dataset("mine.csv")   # path,caption[,start_s,end_s]  or  path,label

The generic table (CSV or parquet), one row per annotation:

- `path,caption[,start_s,end_s]` → retrieval. Several rows of one video (and span) are
  several captions of one clip; different spans of a video are different clips.
- `path,label` → classification. A row may give several labels separated by ";" (a
  multi-label set), or a path may have several rows; the class names are the labels of the
  whole file (all its splits), sorted.

`start`/`end` are accepted for `start_s`/`end_s` (as `finetune`'s pairs file names them);
an optional `split` column is filtered by `split` (a file holding several splits needs
one chosen). Paths are relative to the annotation
file, or to `videos` where given. The benchmarks' own files are read by `adapters.py`.

Videos the annotations name but that are not on disk are listed in `Dataset.missing`
and counted in `Dataset.total`, and their captions (or moment queries) in
`Dataset.missing_queries`, never dropped silently: benchmarks downloaded from YouTube
always lack some. No video found at all is an error naming the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...constants import EVAL_FORMATS, EVAL_PREFERRED_SUFFIXES
from ..embedding import VIDEO_SUFFIXES
from .adapters import ADAPTERS, Annotations, Item, infer_format, read_rows, span, text

# Tried in this order for a name without a suffix: the benchmarks' own first.
_SUFFIXES = (*EVAL_PREFERRED_SUFFIXES, *sorted(VIDEO_SUFFIXES - set(EVAL_PREFERRED_SUFFIXES)))


@dataclass(frozen=True)
class Clip:
    """A video file, or a span of it, to embed once.

    Args:
        path: str. The video file, absolute.
        start_s: float or None. The span's start in seconds; None with `end_s`: the whole
            video.
        end_s: float or None. The span's end in seconds.
    """

    path: str
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self):  # 3 and 3.0 are one span: one key
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    @property
    def key(self) -> str:
        """A stable text key of (path, span): the path, with `#t=start,end` for a span."""
        if self.start_s is None and self.end_s is None:
            return self.path
        return f"{self.path}#t={self.start_s!r},{self.end_s!r}"


@dataclass
class Dataset:
    """The clips of a benchmark that are on disk, with what counts as relevant to each.

    `clips` holds each present video (or span) once, in annotation order; `missing` what
    the annotations name but is not on disk (as looked for), `total` both together. Per
    task: retrieval's captions (`caption_clip[i]`: the clip caption i describes);
    classification's class names and each clip's target classes (several when
    `multi_label`); moments' queries, the whole video each is asked of, and the true span.
    `missing_queries` counts the captions (retrieval) or moment queries (moments) of the
    missing videos: they are not asked either.
    """

    name: str
    format: str
    task: str
    annotations: str
    clips: list[Clip]
    missing: list[str]
    total: int
    protocol: str = ""
    captions: list[str] = field(default_factory=list)
    caption_clip: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    targets: list[tuple[int, ...]] = field(default_factory=list)
    multi_label: bool = False
    queries: list[str] = field(default_factory=list)
    query_clip: list[int] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)
    missing_queries: int = 0


def read_dataset(
    path: str | os.PathLike,
    format: str | None = None,
    videos: str | os.PathLike | None = None,
    split: str | None = None,
) -> Dataset:
    """An annotation file and its videos → a `Dataset`.

    Args:
        path: str or path. The annotation file: a generic CSV/parquet, or a benchmark's
            own file (`adapters.py` names each).
        format: str or None. One of `EVAL_FORMATS`; None: what the file name says
            (MSRVTT_JSFUSION_test.csv → "msrvtt", …), else "csv".
        videos: str, path or None. The folder holding the videos; None: paths are
            relative to the annotation file's folder.
        split: str or None. Which split, where one file holds several.

    Raises:
        ValueError: naming the file (and line, field) and what was expected; also when
            none of the videos it names is found (naming the folder looked in).
    """
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise ValueError(f"path: no such annotation file. Received: {path}")
    inferred = format is None
    format = infer_format(path.name) if inferred else format
    if format not in EVAL_FORMATS:
        raise ValueError(f"format: expected one of {', '.join(EVAL_FORMATS)}. "
                         f"Received: {format!r}")  # fmt: skip
    if videos is not None and not os.path.isdir(videos):
        raise ValueError(f"videos: no such folder. Received: {videos}")
    read = _read_table if format == "csv" else ADAPTERS[format]
    try:
        annotations = read(path, split)
    except ValueError as err:
        if not inferred or format == "csv" or not _generic(path):
            raise
        # A user's own table named after a benchmark ("kinetics_subset.csv"): say why. Not
        # when the file is not one (a benchmark's own file with a bad line, say).
        raise ValueError(f"{err} (format={format!r} was taken from the file name; "
                         f"format='csv' reads it as a generic table)") from None  # fmt: skip
    folder = os.path.abspath(videos) if videos is not None else str(path.parent)
    return _assemble(path, format, annotations, folder)


# ------------------------------------------------------------------ generic table
def _read_table(path: Path, split: str | None) -> Annotations:
    rows = read_rows(path)
    columns = set(rows[0][1])
    if not _generic_columns(columns):
        # DeepMind's Kinetics files are named validate.csv, train.csv: no name to go by.
        kinetics = {"youtube_id", "time_start"} <= columns
        hint = " (a Kinetics file: format='kinetics' reads it)" if kinetics else ""
        received = ",".join(map(str, rows[0][1]))
        raise ValueError(f"{path}: expected columns path,caption[,start_s,end_s] or "
                         f"path,label. Received: {received}{hint}")  # fmt: skip
    # The class list is the file's, over all its splits: the same indices for train and val.
    every = [label for where, row in rows if "label" in columns
             for label in _labels(path, where, row)]  # fmt: skip
    splits = list(dict.fromkeys(str(row.get("split") or "").strip() for _, row in rows))
    if split is not None:
        if "split" not in columns:
            raise ValueError(f"{path}: has no split column to choose split={split!r} from")
        rows = [(where, row) for where, row in rows if str(row["split"]).strip() == split]
        if not rows:
            raise ValueError(f"{path}: no row has split {split!r}; its splits: "
                             f"{', '.join(s or '(empty)' for s in splits)}")  # fmt: skip
    elif len(splits) > 1:
        raise ValueError(f"{path}: holds splits {', '.join(splits)}; choose one (split)")
    times = ("start_s", "end_s") if {"start_s", "end_s"} & columns else ("start", "end")
    items = []
    for where, row in rows:
        start, end = span(path, where, row.get(times[0]), row.get(times[1]), times)
        video = (text(path, where, row, "path"),)
        if "caption" in columns:
            items.append(Item(video, start, end, captions=(text(path, where, row, "caption"),)))
        else:
            items.append(Item(video, start, end, labels=_labels(path, where, row)))
    name = f"csv:{path.stem}"
    if "caption" in columns:
        protocol = ("each row a caption of its clip (a video, or a span of it); a clip's "
                    "captions are all relevant to it")  # fmt: skip
        return Annotations(name, "retrieval", protocol, items)
    labels = sorted(set(every))
    per_clip: dict[tuple, set] = {}
    for item in items:
        per_clip.setdefault((item.names, item.start_s, item.end_s), set()).update(item.labels)
    multi = any(len(found) > 1 for found in per_clip.values())
    protocol = ("multi-label: a clip's classes are all it is labelled with (mAP)" if multi
                else "one class per clip (top-1, top-5, mean per-class accuracy)")  # fmt: skip
    return Annotations(name, "classification", protocol, items, labels, multi)


def _generic_columns(columns: set) -> bool:
    """Whether a table's columns are the generic table's: path and caption, or path and
    label."""
    return "path" in columns and ("caption" in columns) != ("label" in columns)


def _generic(path: Path) -> bool:
    """Whether a file reads as a generic table (its columns are one's)."""
    try:
        return _generic_columns(set(read_rows(path)[0][1]))
    except (ValueError, OSError):
        return False


def _labels(path: Path, where: str, row: dict) -> tuple[str, ...]:
    """A row's class names: its label, split at ";" (a multi-label row)."""
    labels = tuple(dict.fromkeys(part.strip() for part in text(path, where, row, "label")
                                 .split(";") if part.strip()))  # fmt: skip
    if not labels:
        raise ValueError(f"{path}, {where}: label holds no class name. "
                         f"Received: {row['label']!r}")  # fmt: skip
    return labels


# ------------------------------------------------------------- videos on disk
class _Folder:
    """Looks names up in a folder, listing each directory once (a benchmark names tens of
    thousands of videos: one listing is cheaper than a stat per name and suffix)."""

    def __init__(self, root: str):
        self.root = root
        self._listings: dict[str, frozenset] = {}

    def _has(self, candidate: str) -> bool:
        folder, name = os.path.split(candidate)
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:  # no such folder: nothing in it
                self._listings[folder] = frozenset()
        return name in self._listings[folder]

    def looked_for(self, name: str) -> str:
        """Where `name` was looked for, as `missing` reports it."""
        full = os.path.normpath(os.path.join(self.root, name))
        return full if Path(full).suffix.lower() in VIDEO_SUFFIXES else f"{full}.*"

    def find(self, names: tuple[str, ...]) -> str | None:
        for name in names:
            full = os.path.normpath(os.path.join(self.root, name))
            if self._has(full) and os.path.isfile(full):
                return full
            if Path(full).suffix.lower() not in VIDEO_SUFFIXES:
                for suffix in _SUFFIXES:
                    if self._has(full + suffix):
                        return full + suffix
        return None


def _assemble(path: Path, format: str, notes: Annotations, folder: str) -> Dataset:
    """Annotations + the videos folder → the Dataset: clips on disk, each once."""
    finder = _Folder(folder)
    dataset = Dataset(notes.name, format, notes.task, str(path), [], [], 0, notes.protocol,
                      labels=list(notes.labels), multi_label=notes.multi_label)  # fmt: skip
    index: dict[str, int] = {}
    missing: dict[str, None] = {}
    classes = {label: i for i, label in enumerate(notes.labels)}
    targets: list[set] = []
    for item in notes.items:
        found = finder.find(item.names)
        if found is None:
            missing[Clip(finder.looked_for(item.names[0]), item.start_s, item.end_s).key] = None
            dataset.missing_queries += len(item.captions) + len(item.moments)
            continue
        clip = Clip(found, item.start_s, item.end_s)
        i = index.setdefault(clip.key, len(dataset.clips))
        if i == len(dataset.clips):
            dataset.clips.append(clip)
            targets.append(set())
        dataset.captions += item.captions
        dataset.caption_clip += [i] * len(item.captions)
        targets[i].update(classes[label] for label in item.labels)
        for query, start, end in item.moments:
            dataset.queries.append(query)
            dataset.query_clip.append(i)
            dataset.spans.append((start, end))
    dataset.missing = list(missing)
    dataset.total = len(dataset.clips) + len(dataset.missing)
    if notes.task == "classification":
        dataset.targets = [tuple(sorted(found)) for found in targets]
    if not dataset.total:
        raise ValueError(f"{path}: names no video; expected at least one annotated item")
    if not dataset.clips:
        raise ValueError(f"{path}: none of the {dataset.total} videos it names is in {folder} "
                         f"(looked for {dataset.missing[0]}, …); expected the folder holding "
                         f"them (videos)")  # fmt: skip
    return dataset
