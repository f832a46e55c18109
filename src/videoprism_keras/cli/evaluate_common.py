"""What every `videoprism eval` task shares: the data and run flags, reading the data
(checked before the model loads), loading the model with its adapters, the run's settings
from the flags, and the record's summary and JSON."""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..constants import (
    EVAL_BOOTSTRAP_SAMPLES,
    EVAL_CACHE_ENV,
    EVAL_CACHE_FOLDER,
    EVAL_FORMATS,
    EVAL_INTERVAL_LEVEL,
    EVAL_MISSING_SHOWN,
    EVAL_TEMPLATE_SETS,
    LORA_FILE_SUFFIX,
)
from .inputs import ray_target
from .models import ModelOptions
from .parser import UsageError, add_model_options, positive


def add_data_options(p: argparse.ArgumentParser, positional: str = "data",
                     metavar: str = "DATA") -> None:  # fmt: skip
    """A dataset as the user has it: its annotation file, its format, its videos."""
    p.add_argument(positional, metavar=metavar,
                   help="the annotation file (CSV/parquet, or the benchmark's own)")  # fmt: skip
    p.add_argument("--format", choices=EVAL_FORMATS, help="the annotation file's format "
                   "(default: csv, or what the file name says)")  # fmt: skip
    p.add_argument("--videos", metavar="FOLDER", help="the folder holding the videos "
                   "(default: paths as given, relative to the annotation file)")  # fmt: skip
    p.add_argument("--split", metavar="SPLIT", help="which split, where one file holds "
                   "several")  # fmt: skip


def add_run_options(p: argparse.ArgumentParser, text: bool = True) -> None:
    """The model, where embeddings are cached, where results go."""
    add_model_options(p, text=text)
    p.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="FILE",
        help="LoRA adapters (from videoprism finetune) applied to the model",
    )
    p.add_argument("--cache", metavar="FOLDER", help="the embedding cache folder (default: "
                   f"${EVAL_CACHE_ENV}, else {EVAL_CACHE_FOLDER})")  # fmt: skip
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="embed on Ray: a bare --ray starts a local instance (put it after "
                   "DATA); --ray=ADDRESS uses that cluster (before DATA or after it)")  # fmt: skip
    p.add_argument("-o", "--output", help="folder for the result JSON (default: print only)")
    p.add_argument("--bootstrap", type=positive(int), default=EVAL_BOOTSTRAP_SAMPLES,
                   help=f"bootstrap samples for the {EVAL_INTERVAL_LEVEL:.0%}% intervals "
                   f"(default {EVAL_BOOTSTRAP_SAMPLES})")  # fmt: skip
    for action in p._actions:  # the shared --strict, said as eval does it
        if action.dest == "strict":
            action.help = ("fail if any video cannot be read (checked once the videos are "
                           "embedded, before any result is written; default: skip it, say "
                           "so, go on)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")


def check_templates(given: str) -> tuple[str, ...]:
    """--templates: a set's name, or a file of templates (each with its "{}")."""
    from ..apps.evaluation.classification import read_templates

    if given not in EVAL_TEMPLATE_SETS and not Path(given).expanduser().is_file():
        raise UsageError(f"--templates {given}: expected {', '.join(EVAL_TEMPLATE_SETS)} or a "
                         "text file of templates, one a line")  # fmt: skip
    try:
        return read_templates(given)
    except ValueError as err:  # it names the file, and the line
        raise UsageError(f"--templates {err}") from None


# What `read_dataset`'s messages call its arguments → the flags that give them (a task
# reading a second file, probe's --val, passes its own: `read_data`'s flags).
DATA_FLAGS = {"data": "", "format": "--format", "videos": "--videos", "split": "--split"}


def read_data(args: argparse.Namespace, task: str, flags: dict | None = None):
    """DATA read (and --output checked) before the model loads: a file that is not there,
    a format that does not fit, no video found, a dataset of another task: one line, in the
    flags' words (`flags`: DATA_FLAGS' names for another file's flags, e.g. {"data":
    "--val", "videos": "--val-videos", "split": "--val-split"}). The missing videos are
    said on stderr: how many, and the first few."""
    names = {**DATA_FLAGS, **(flags or {})}
    label = f"{names['data']} " if names["data"] else ""
    output = getattr(args, "output", None)
    if output and Path(output).exists() and not Path(output).is_dir():
        raise UsageError(f"-o {output}: expected a folder for the result JSON, not a file")
    cache = getattr(args, "cache", None)
    if cache and Path(cache).expanduser().exists() and not Path(cache).expanduser().is_dir():
        raise UsageError(f"--cache {cache}: expected a folder for the embedding cache, not a "
                         "file")  # fmt: skip
    for adapter in getattr(args, "lora", ()):
        if not Path(adapter).is_file():
            raise UsageError(f"--lora {adapter}: no such file; expected LoRA adapters "
                             f"({LORA_FILE_SUFFIX}) written by videoprism finetune")  # fmt: skip
    if getattr(args, "ray", None) and not args.ray == "local" and Path(args.ray).exists():
        raise UsageError(f"--ray takes a Ray address, not {args.ray!r}: write --ray=ADDRESS "
                         "(before DATA or after it), or put a bare --ray after DATA")  # fmt: skip
    data = Path(args.data).expanduser()
    if not data.is_file():
        what = "is a folder" if data.is_dir() else "no such file"
        raise UsageError(f"{label}{args.data}: {what}; expected the annotation file "
                         "(CSV/parquet, or the benchmark's own: --format)")  # fmt: skip
    videos = None if args.videos is None else Path(args.videos).expanduser()
    if videos is not None and not videos.is_dir():
        what = "is a file" if videos.exists() else "no such folder"
        raise UsageError(f"{names['videos']} {args.videos}: {what}; expected the folder "
                         "holding the videos")  # fmt: skip
    from ..apps.evaluation.datasets import read_dataset

    try:
        dataset = read_dataset(data, format=args.format, videos=videos, split=args.split)
    except ValueError as err:
        raise UsageError(label + in_flags(str(err), names)) from None
    if dataset.task != task:
        raise UsageError(f"{label}{args.data} is a {dataset.task} dataset ({names['format']} "
                         f"{dataset.format}): measure it with videoprism eval "
                         f"{dataset.task}")  # fmt: skip
    for line in missing_lines(dataset):
        print(f"videoprism: {line}", file=sys.stderr)
    return dataset


def in_flags(message: str, flags: dict) -> str:
    """A library message in the CLI's words: `name='value'` → `--flag value`, `(name)` →
    `(--flag)`, a leading `name: ` → `--flag: ` (the forms `read_dataset` names its
    arguments in)."""
    for name, flag in flags.items():
        if not flag:
            continue
        quoted = rf"(?<![\w-]){name}=('[^']*'|\"[^\"]*\")"
        message = re.sub(quoted, lambda m, flag=flag: f"{flag} {ast.literal_eval(m.group(1))}",
                         message)  # fmt: skip
        message = message.replace(f"({name})", f"({flag})")
        if message.startswith(f"{name}: "):
            message = flag + message[len(name) :]
    return message


def missing_lines(dataset) -> list[str]:
    """What the log says of a dataset's missing videos: its file, how many (and their
    captions or queries), the first EVAL_MISSING_SHOWN of them; the record lists them all."""
    missing = dataset.missing
    if not missing:
        return []
    asked = {"retrieval": ("caption", "captions"), "moments": ("query", "queries")}
    count = dataset.missing_queries
    words = asked.get(dataset.task)
    unasked = f" (with their {count} {words[count != 1]})" if words else ""
    # The file named: probe reads two, each says its own.
    lines = [f"{Path(dataset.annotations).name}: {len(missing)} of {dataset.total} videos not "
             f"found{unasked}, not measured:"]  # fmt: skip
    lines += [f"  {path}" for path in missing[:EVAL_MISSING_SHOWN]]
    if len(missing) > EVAL_MISSING_SHOWN:
        lines.append(f"  … and {len(missing) - EVAL_MISSING_SHOWN} more (the record lists "
                     "them all)")  # fmt: skip
    return lines


@dataclass
class Loaded:
    """The model a task measures, with what the record and the cache say of it."""

    options: ModelOptions
    model: object
    tokenizer: object
    key: str
    info: dict
    folder: str | None
    encoder: object  # one compiled model for the videos and the texts

    def cache(self, dataset):
        from ..apps.evaluation.cache import EmbeddingCache

        return EmbeddingCache(self.folder, self.key, dataset.name)


def load_model(args: argparse.Namespace, text: bool = True) -> Loaded:
    """The model of the flags (--preset, --dtype, …), its --lora adapters applied in turn,
    its tokenizer (with `text`), its cache key and the record's model fields."""
    from ..apps.evaluation.cache import model_key
    from ..apps.evaluation.results import model_info

    options = ModelOptions.from_args(args)
    model = options.load(need_text=text, quantize=False)  # int8 after the adapters merge
    if args.lora:
        from ..model import lora

        for adapter in args.lora:  # merged in turn: each adds to the weights before it
            try:
                lora.load(model, adapter)
            except ValueError as err:
                raise UsageError(f"--lora {adapter}: {err}") from None
            lora.merge(model)
    options.quantize(model)
    tokenizer = options.load_tokenizer(model) if text else None
    dtype, engine = options.dtype or "float32", options.chosen_engine
    key = model_key(model, source=options.preset_name, dtype=dtype, lora=args.lora,
                    engine=engine)  # fmt: skip
    info = model_info(options.preset_name, dtype, args.lora, key, engine=engine)
    return Loaded(options, model, tokenizer, key, info, args.cache, options.encoder(model))


def run_settings(args: argparse.Namespace, loaded: Loaded) -> dict:
    """The keyword arguments every task's run takes from the flags."""
    options = loaded.options
    return {"batch_size": options.batch_size, "num_frames": options.num_frames,
            "size": options.size, "ray": ray_target(args.ray), "progress": options.progress,
            "bootstrap": args.bootstrap, "seed": args.seed, "model_info": loaded.info,
            "encoder": loaded.encoder,
            "log": lambda line: print(f"videoprism: {line}", file=sys.stderr)}  # fmt: skip


def finish(args: argparse.Namespace, record: dict) -> dict:
    """--strict, the JSON under -o, and the summary on stdout (--json: the record)."""
    items = record["items"]
    if args.strict and items["failed"]:
        raise RuntimeError(f"{items['failed']} video(s) could not be read (--strict makes any "
                           "failure an error)")  # fmt: skip
    wrote = None
    if args.output:
        from ..apps.evaluation.results import write_record

        wrote = write_record(record, args.output)
    if not args.json:
        print(summary(record))
        if wrote:
            print(f"wrote {wrote}")
    return record


def summary(record: dict) -> str:
    """The record in a few lines: what was measured, on how much, the metrics with their
    intervals (fractions in percent, ranks as they are)."""
    from ..apps.evaluation.results import is_rank

    items = record["items"]
    level = record["bootstrap"].get("level")
    within = f" ({level:.0%} bootstrap intervals)" if record["intervals"] and level else ""
    lines = [f"{record['task']}: {record['model']['name']} on {record['dataset']['name']}",
             f"  items: {items['used']} used, {items['missing']} missing, {items['failed']} "
             f"failed, of {items['total']}", f"  metrics{within}:"]  # fmt: skip

    def shown(name: str, value: float) -> str:
        return f"{value:.1f}" if is_rank(name) else f"{100 * value:.1f}%"

    for name, value in record["metrics"].items():
        low_high = record["intervals"].get(name)
        around = f"  [{shown(name, low_high[0])}, {shown(name, low_high[1])}]" if low_high else ""
        lines.append(f"    {name:<22} {shown(name, value):>7}{around}")
    return "\n".join(lines)
