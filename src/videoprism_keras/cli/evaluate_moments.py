"""`videoprism eval moments`: moment retrieval (Charades-STA), a text query → the span of its
video it describes, scored by R@1 at IoU 0.3/0.5/0.7 and the mean IoU."""

from __future__ import annotations

import argparse
import sys

from ..constants import EVAL_MOMENT_CLIP_SECONDS, EVAL_MOMENT_STRIDE_SECONDS
from .parser import UsageError, add_command, positive


def add_parser(tasks: argparse._SubParsersAction) -> None:
    from .evaluate import add_data_options, add_run_options

    what = "moment retrieval (Charades-STA): R@1 at IoU 0.3/0.5/0.7 and mean IoU"
    p = add_command(tasks, "moments", what, moments)
    add_data_options(p)
    clip_help = f"window length in seconds (default {EVAL_MOMENT_CLIP_SECONDS:g})"
    p.add_argument("--clip-seconds", type=positive(float), help=clip_help)
    stride_help = f"from one window's start to the next (default {EVAL_MOMENT_STRIDE_SECONDS:g})"
    p.add_argument("--stride-seconds", type=positive(float), help=stride_help)
    p.add_argument("--refine", action="store_true", help="place each moment's edges again on "
                   "finer windows (embedded on every run, not cached)")  # fmt: skip
    add_run_options(p)


def moments(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from ..apps.evaluation.datasets import read_dataset
    from .models import ModelOptions

    for flag in args.lora:
        if not Path(flag).is_file():
            raise UsageError(f"--lora {flag}: no such file; expected adapters written by "
                             "videoprism finetune (.lora.h5)")  # fmt: skip
    try:
        dataset = read_dataset(args.data, args.format, args.videos, args.split)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if dataset.task != "moments":
        raise UsageError(f"{args.data}: a {dataset.task} dataset; moments need start–end "
                         "annotations of queries (--format charades-sta)")  # fmt: skip
    options = ModelOptions.from_args(args)
    model = options.load(need_text=True)
    for adapter in args.lora:
        model.load_lora_weights(adapter)
        model.merge_lora_weights()
    tokenizer = options.load_tokenizer(model)
    record = _run(args, options, model, tokenizer, dataset)
    _show(record, dataset, sys.stderr if args.json else sys.stdout)
    if args.output:
        from ..apps.evaluation.results import write_record

        path = write_record(record, args.output)
        print(f"videoprism: wrote {path}", file=sys.stderr)
    return record


def _run(args, options, model, tokenizer, dataset) -> dict:
    from ..apps.evaluation.cache import EmbeddingCache, model_key
    from ..apps.evaluation.grounding import run_moments
    from ..apps.evaluation.results import model_info

    dtype = options.dtype or "float32"
    key = model_key(model, source=options.preset_name, dtype=dtype, lora=args.lora)
    cache = EmbeddingCache(args.cache, key, dataset.name)
    ray = None if args.ray is None else (True if args.ray == "local" else args.ray)
    return run_moments(
        model, tokenizer, dataset, cache,
        clip_seconds=args.clip_seconds or EVAL_MOMENT_CLIP_SECONDS,
        stride_seconds=args.stride_seconds or EVAL_MOMENT_STRIDE_SECONDS,
        batch_size=options.batch_size, num_frames=options.num_frames, size=options.size,
        ray=ray, progress=options.progress, bootstrap=args.bootstrap, seed=args.seed,
        refine=args.refine, model_info=model_info(options.preset_name, dtype, args.lora, key),
    )  # fmt: skip


def _show(record: dict, dataset, out) -> None:
    """The metrics with their intervals, and what was left out."""
    items, settings = record["items"], record["settings"]
    print(f"{dataset.name}: {settings['queries_used']} of {settings['queries']} queries in "
          f"{items['used']} videos ({items['missing']} missing, {items['failed']} unreadable)",
          file=out)  # fmt: skip
    for name, value in record["metrics"].items():
        low, high = record["intervals"].get(name, (value, value))
        print(f"  {name:<12} {100 * value:5.1f}  [{100 * low:.1f}, {100 * high:.1f}]",
              file=out)  # fmt: skip
