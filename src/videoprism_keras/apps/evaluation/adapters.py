"""The benchmarks' own annotation files → the clips they name, before any video is looked for.

Each reader takes the file as its download has it and says which clips (or spans) the
benchmark evaluates and what counts as relevant; `datasets.read_dataset` then looks the
videos up in the user's folder and counts the missing ones. Nothing here opens a video.

Which file each format reads, and where it comes from (the videos are the user's):

    msrvtt        MSRVTT_JSFUSION_test.csv: in CLIP4Clip's msrvtt_data.zip (videos: MSRVTT.zip)
    vatex         vatex_validation_v1.0.json: the VATEX site; test_list.txt: HGR's split
    activitynet   val_1.json: ActivityNet Captions' captions.zip (Stanford densevid page)
    kinetics      kinetics_400_val.csv / validate.csv: the Kinetics annotations (DeepMind, CVDF)
    ssv2          something-something-v2-validation.json + -labels.json: the SSv2 labels zip
    charades      Charades_v1_test.csv + Charades_v1_classes.txt: Charades' annotations zip
    charades-sta  charades_sta_test.txt: the Charades-STA release (the TALL repository)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...tables import table_rows


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
    """A CSV (with a header line) or parquet annotation file → its rows, each with where it
    is ("line 2": the first after a CSV's header; "row 1": a parquet file's first).

    Raises:
        ValueError: naming the file, when it cannot be read or holds no rows.
    """
    rows = table_rows(path, "a .parquet annotation file", numbered=True)
    if not rows:
        raise ValueError(f"{path}: no rows; expected a header line and one row per item")
    return rows


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


def span(path: Path, where: str, start_s, end_s, names=("start_s", "end_s")):
    """(start_s, end_s) of a row: both empty (the whole video) or 0 <= start < end."""
    start, end = seconds(path, where, names[0], start_s), seconds(path, where, names[1], end_s)
    if (start is None) != (end is None):
        raise ValueError(f"{path}, {where}: {names[0]} and {names[1]} must both be given "
                         f"or both be empty. Received: {start!r}, {end!r}")  # fmt: skip
    if start is not None and not start < end:
        raise ValueError(f"{path}, {where}: needs {names[0]} < {names[1]}. "
                         f"Received: {start:g}, {end:g}")  # fmt: skip
    return start, end


def no_split(path: Path, format: str, split: str | None) -> None:
    if split is not None:
        raise ValueError(f"{path}: a {format} file holds one split; expected no split. "
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


def _part(path: Path) -> str:
    """The split a file's name says: "test", "train", "val", else "all"."""
    stem = path.stem.lower()
    for word, part in (("test", "test"), ("train", "train"), ("val", "val")):
        if word in stem:
            return part
    return "all"


def read_json(path: Path):
    """A JSON file's content, or a ValueError naming the file and where it breaks."""
    import json

    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None


def _texts(path: Path, where: str, value, field: str) -> tuple[str, ...]:
    """A non-empty list of non-empty strings, stripped."""
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise ValueError(f"{path}, {where}: {field} must be a non-empty list of text. "
                         f"Received: {value!r:.80}")  # fmt: skip
    out = tuple(str(v).strip() for v in value if isinstance(v, str))
    if len(out) != len(value) or not all(out):
        raise ValueError(f"{path}, {where}: {field} holds an empty or non-text entry")
    return out


# ------------------------------------------------------------------------- VATEX
def read_vatex(path: Path, split: str | None) -> Annotations:
    """VATEX: vatex_validation_v1.0.json (the official download: a list of {videoID, enCap,
    chCap}; a {videoID: {enCap}} dict is read too); `split` a list of videoIDs (one a line:
    the path, or NAME for NAME_list.txt beside the JSON, e.g. the 1,500-video test_list.txt of
    the retrieval split). Videos <videoID>.mp4 (youtube id_start_end, as the downloads name
    them)."""
    data = read_json(path)
    if isinstance(data, dict):
        entries = [(f"video {key}", {"videoID": key, **value}) for key, value in data.items()
                   if isinstance(value, dict)]  # fmt: skip
    elif isinstance(data, list):
        entries = [(f"entry {i}", e) for i, e in enumerate(data, start=1) if isinstance(e, dict)]
    else:
        entries = []
    if not entries or len(entries) != len(data):
        raise ValueError(f"{path}: expected VATEX annotations: a list of {{videoID, enCap}} "
                         f"objects (or a dict of videoID → {{enCap}})")  # fmt: skip
    name = "vatex-" + _vatex_stem(path.stem)
    if split is not None:
        listed = Path(split) if os.path.isfile(split) else path.parent / f"{split}_list.txt"
        if not listed.is_file():
            raise ValueError(f"split: expected a file listing VATEX videoIDs, or NAME for "
                             f"NAME_list.txt beside {path}. Received: {split!r}")  # fmt: skip
        with open(listed, encoding="utf-8-sig") as f:
            keep = [line.strip() for line in f if line.strip()]
        by_id = {str(e.get("videoID")): (where, e) for where, e in entries}
        absent = [video for video in keep if video not in by_id]
        if absent:
            raise ValueError(f"{listed}: {len(absent)} videoIDs are not in {path} "
                             f"(the first: {absent[0]}); expected ids of that file")  # fmt: skip
        entries = [by_id[video] for video in keep]
        name = "vatex-" + listed.stem.removesuffix("_list")
    items = []
    for where, entry in entries:
        video = str(entry.get("videoID") or "").strip()
        if not video:
            raise ValueError(f"{path}, {where}: videoID is empty; expected "
                             f"<youtube id>_<start>_<end>")  # fmt: skip
        items.append(Item((video,), captions=_texts(path, where, entry.get("enCap"),
                                                              "enCap")))  # fmt: skip
    return Annotations(name, "retrieval", (
        "VATEX: every English caption (enCap) is a text→video query with its one video "
        "relevant; for video→text, all captions of a video are relevant and its best-ranked "
        "one counts"), items)  # fmt: skip


def _vatex_stem(stem: str) -> str:
    lower = stem.lower()
    for word, short in (("validation", "val"), ("public_test", "public-test"),
                        ("private_test", "private-test"), ("training", "train")):  # fmt: skip
        if word in lower:
            return short
    return lower.replace("_", "-")


# ------------------------------------------------------------ ActivityNet Captions
def read_activitynet(path: Path, split: str | None) -> Annotations:
    """ActivityNet Captions: val_1.json (or val_2.json, train.json) from the dataset's
    captions download ({video_id: {duration, timestamps, sentences}}); videos v_<id>.mp4 /
    .mkv / .webm as the ActivityNet downloads name them (<id> without "v_" is tried too)."""
    no_split(path, "activitynet", split)
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected ActivityNet Captions annotations: an object of "
                         f"video_id → {{duration, timestamps, sentences}}")  # fmt: skip
    items = []
    for key, entry in data.items():
        where = f"video {key}"
        if not isinstance(entry, dict):
            raise ValueError(f"{path}, {where}: expected {{duration, timestamps, sentences}}")
        sentences = _texts(path, where, entry.get("sentences"), "sentences")
        bare = key.removeprefix("v_")
        names = (key, bare) if key != bare else (key, f"v_{key}")
        items.append(Item(names, captions=(" ".join(sentences),)))
    name = "activitynet-" + path.stem.lower().replace("_", "")
    return Annotations(name, "retrieval", (
        "ActivityNet Captions paragraph→video: a video's sentences joined in order into one "
        "paragraph, the whole video its clip (as CLIP4Clip and later work evaluate it)"),
        items)  # fmt: skip


# --------------------------------------------------------------------- Kinetics
_KINETICS_SPLITS = {"validate": "val", "valid": "val", "validation": "val"}


def _kinetics_split(value) -> str:
    """A split's name, the releases' "validate" as "val"."""
    value = str(value or "").strip()
    return _KINETICS_SPLITS.get(value, value)


def read_kinetics(path: Path, split: str | None) -> Annotations:
    """Kinetics-400/600: the dataset's CSV (kinetics_400_val.csv, validate.csv, …; columns
    label,youtube_id,time_start,time_end,split[,is_cc]); videos as the common downloaders
    name them: <label>/<youtube_id>_<start:06d>_<end:06d>.mp4 (label as is or with "_" for
    spaces), or flat, or <youtube_id>.mp4; any video suffix."""
    rows = read_rows(path)
    require_columns(path, rows, ("label", "youtube_id", "time_start", "time_end"))
    # The class list is the file's, over all its splits: the same indices for train and val.
    labels = sorted({text(path, where, row, "label") for where, row in rows})
    splits = list(dict.fromkeys(_kinetics_split(row.get("split")) for _, row in rows))
    if split is not None:
        split = _kinetics_split(split)
        if split not in splits:
            raise ValueError(f"{path}: no row has split {split!r}; its splits: "
                             f"{', '.join(s or '(empty)' for s in splits)}")  # fmt: skip
    elif len(splits) > 1:
        raise ValueError(f"{path}: holds splits {', '.join(splits)}; choose one (split)")
    chosen = split if split is not None else splits[0]
    named = chosen or _part(path)  # no split column: the file name's
    items = []
    for where, row in rows:
        if _kinetics_split(row.get("split")) != chosen:
            continue
        label, video = text(path, where, row, "label"), text(path, where, row, "youtube_id")
        start, end = span(path, where, row["time_start"], row["time_end"],
                          ("time_start", "time_end"))  # fmt: skip
        if start is None:
            raise ValueError(f"{path}, {where}: time_start and time_end are empty; expected "
                             f"the clip's seconds in the video")  # fmt: skip
        base = f"{video}_{int(start):06d}_{int(end):06d}"
        folders = dict.fromkeys((label, label.replace(" ", "_"), ""))
        names = (*(os.path.join(folder, base) for folder in folders), video)
        items.append(Item(names, labels=(label,)))
    # Which Kinetics: the file name's number, else the smallest holding all its classes.
    sizes = [n for n in (400, 600, 700) if str(n) in path.stem] or [
        n for n in (400, 600, 700) if len(labels) <= n] or [700]  # fmt: skip
    size = sizes[0]
    return Annotations(f"kinetics-{size}-{named}", "classification", (
        "Kinetics: one class per clip (the trimmed 10-second clip as downloaded); top-1, "
        "top-5 and mean per-class accuracy over the file's classes"), items, labels)  # fmt: skip


# ------------------------------------------------------------ Something-Something v2
def read_ssv2(path: Path, split: str | None) -> Annotations:
    """Something-Something v2: something-something-v2-validation.json (a list of {id,
    label, template, placeholders}) with something-something-v2-labels.json beside it
    (class name → index), both from the dataset's labels download; videos <id>.webm."""
    no_split(path, "ssv2", split)
    classes_file = path.parent / "something-something-v2-labels.json"
    if not classes_file.is_file():
        raise ValueError(f"{path}: expected the class list {classes_file.name} beside it")
    classes = read_json(classes_file)
    try:
        order = sorted(classes, key=lambda name: int(classes[name]))
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"{classes_file}: expected an object of class name → index") from None
    known = set(order)
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a list of {{id, template}} objects")
    items = []
    for i, entry in enumerate(data, start=1):
        where = f"entry {i}"
        if not isinstance(entry, dict) or not str(entry.get("id") or "").strip():
            raise ValueError(f"{path}, {where}: expected an object with an id")
        template = str(entry.get("template") or "").strip()
        if not template:
            raise ValueError(f"{path}, {where}: no template; expected a labelled split "
                             f"(the test split's labels are not public)")  # fmt: skip
        # The class names are the templates without their brackets: "[something]" → "something".
        label = template.replace("[", "").replace("]", "")
        if label not in known:
            raise ValueError(f"{path}, {where}: class {label!r} is not in {classes_file.name}")
        items.append(Item((str(entry["id"]).strip(),), labels=(label,)))
    return Annotations(f"ssv2-{_part(path)}", "classification", (
        "Something-Something v2: one class per video, the template with \"something\" in "
        "its placeholders; top-1, top-5 and mean per-class accuracy"), items, order)  # fmt: skip


# ---------------------------------------------------------------------- Charades
def read_charades(path: Path, split: str | None) -> Annotations:
    """Charades: Charades_v1_test.csv (or _train) with Charades_v1_classes.txt beside it
    ("c000 Holding some clothes"), from the Charades annotations download; videos <id>.mp4
    (Charades_v1_480)."""
    no_split(path, "charades", split)
    classes_file = path.parent / "Charades_v1_classes.txt"
    if not classes_file.is_file():
        raise ValueError(f"{path}: expected the class list {classes_file.name} beside it")
    codes: dict[str, str] = {}
    with open(classes_file, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            code, _, name = line.strip().partition(" ")
            if not line.strip():
                continue
            if not name.strip():
                raise ValueError(f"{classes_file}, line {number}: expected \"<code> <name>\". "
                                 f"Received: {line.strip()!r}")  # fmt: skip
            codes[code] = name.strip()
    rows = read_rows(path)
    require_columns(path, rows, ("id", "actions"))
    items = []
    for where, row in rows:
        found = []
        for action in str(row.get("actions") or "").split(";"):
            fields = action.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}, {where}: expected actions \"<class> <start> <end>"
                                 f"\" separated by \";\". Received: {action!r}")  # fmt: skip
            if fields[0] not in codes:
                raise ValueError(f"{path}, {where}: class {fields[0]!r} is not in "
                                 f"{classes_file.name}")  # fmt: skip
            found.append(codes[fields[0]])
        items.append(Item((text(path, where, row, "id"),), labels=tuple(dict.fromkeys(found))))
    return Annotations(f"charades-{_part(path)}", "classification", (
        "Charades: multi-label over each whole video, its classes those of its actions "
        "(videos without actions count as negatives for every class); mean average precision "
        "over the classes"), items, list(codes.values()), multi_label=True)  # fmt: skip


def read_charades_sta(path: Path, split: str | None) -> Annotations:
    """Charades-STA: charades_sta_test.txt (or _train) from the Charades-STA release, one
    moment a line "<video id> <start> <end>##<sentence>"; videos <id>.mp4 of Charades."""
    no_split(path, "charades-sta", split)
    items: dict[str, list] = {}
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            head, marker, sentence = line.strip().partition("##")
            fields = head.split()
            if not marker or len(fields) != 3 or not sentence.strip():
                raise ValueError(f"{path}, {where}: expected \"<video id> <start> <end>##"
                                 f"<sentence>\". Received: {line.strip()!r:.120}")  # fmt: skip
            start, end = span(path, where, fields[1], fields[2], ("start", "end"))
            items.setdefault(fields[0], []).append((sentence.strip(), start, end))
    return Annotations(f"charades-sta-{_part(path)}", "moments", (
        "Charades-STA: each sentence a query asked of its whole video; a moment is found "
        "when the top span's IoU with the annotated one reaches the threshold (R@1 at IoU "
        "0.3/0.5/0.7, mean IoU)"), [Item((video,), moments=tuple(moments))
                                    for video, moments in items.items()])  # fmt: skip


ADAPTERS: dict[str, Callable[[Path, str | None], Annotations]] = {
    "msrvtt": read_msrvtt,
    "vatex": read_vatex,
    "activitynet": read_activitynet,
    "kinetics": read_kinetics,
    "ssv2": read_ssv2,
    "charades": read_charades,
    "charades-sta": read_charades_sta,
}


def infer_format(name: str) -> str:
    """The format a file name says (case-insensitive), or "csv"."""
    lower = name.lower().replace("_", "-")
    if lower in ("val-1.json", "val-2.json"):
        return "activitynet"
    for word, format in (("msrvtt", "msrvtt"), ("msr-vtt", "msrvtt"), ("vatex", "vatex"),
                         ("activitynet", "activitynet"), ("kinetics", "kinetics"),
                         ("something-something", "ssv2"), ("ssv2", "ssv2"),
                         ("charades-sta", "charades-sta"), ("charades", "charades")):  # fmt: skip
        if word in lower:
            return format
    return "csv"
