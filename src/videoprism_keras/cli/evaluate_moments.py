"""`videoprism eval moments`: moment retrieval (Charades-STA), a text query → the span of its
video it describes, scored by R@1 at IoU 0.3/0.5/0.7 and the mean IoU."""

from __future__ import annotations

import argparse

from ..constants import EVAL_MOMENT_CLIP_SECONDS, EVAL_MOMENT_STRIDE_SECONDS
from .evaluate_common import (
    add_data_options,
    add_run_options,
    finish,
    load_model,
    read_data,
    run_settings,
)
from .parser import add_command, positive


def add_parser(tasks: argparse._SubParsersAction) -> None:
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
    dataset = read_data(args, "moments")
    loaded = load_model(args)
    from ..apps.evaluation.grounding import run_moments

    record = run_moments(loaded.model, loaded.tokenizer, dataset, loaded.cache(dataset),
                         clip_seconds=args.clip_seconds or EVAL_MOMENT_CLIP_SECONDS,
                         stride_seconds=args.stride_seconds or EVAL_MOMENT_STRIDE_SECONDS,
                         refine=args.refine, **run_settings(args, loaded))  # fmt: skip
    return finish(args, record)
