"""`videoprism eval probe TRAIN --val VAL`: the frozen-backbone protocol (an attentive probe,
our classifier's pooler and head, trained on cached features) with a linear probe on
pooled features beside it (`apps.evaluation.probe`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import EVAL_PROBE_EPOCHS, EVAL_PROBE_LEARNING_RATE
from .evaluate_common import (
    add_data_options,
    add_run_options,
    finish,
    load_model,
    read_data,
    run_settings,
)
from .parser import UsageError, add_command, positive


def add_parser(tasks: argparse._SubParsersAction) -> None:
    p = add_command(tasks, "probe", "frozen-backbone probes: an attentive probe (the paper's) "
                    "and a linear one on pooled features, trained on TRAIN, measured on "
                    "--val", probe)  # fmt: skip
    add_data_options(p, positional="data", metavar="TRAIN")
    p.add_argument("--val", required=True, metavar="FILE", help="the validation annotation "
                   "file (same --format), whose labels are all TRAIN's")  # fmt: skip
    p.add_argument("--val-videos", metavar="FOLDER", help="the folder holding --val's videos "
                   "(default: --videos)")  # fmt: skip
    p.add_argument("--val-split", metavar="SPLIT", help="--val's split, where its file holds "
                   "several (--split is TRAIN's)")  # fmt: skip
    p.add_argument(
        "--epochs",
        type=positive(int),
        default=EVAL_PROBE_EPOCHS,
        help=f"the attentive probe's passes over TRAIN (default {EVAL_PROBE_EPOCHS})",
    )
    p.add_argument("--learning-rate", type=positive(float), default=EVAL_PROBE_LEARNING_RATE,
                   help=f"its Adam step size (default {EVAL_PROBE_LEARNING_RATE:g})")  # fmt: skip
    p.add_argument("--token-grid", type=positive(int), metavar="G", help="average each "
                   "frame's patches to G×G tokens before caching (less disk and memory; "
                   "default: every patch)")  # fmt: skip
    add_run_options(p, text=False)
    for action in p._actions:  # the shared flag's help, in what it seeds here
        if "--seed" in action.option_strings:
            action.help = "seeds the bootstrap and the probes' training (default 0)"


def probe(args: argparse.Namespace) -> dict:
    val = Path(args.val).expanduser()
    if not val.is_file():  # before the training set is read, and long before the model
        what = "is a folder" if val.is_dir() else "no such file"
        raise UsageError(f"--val {args.val}: {what}; expected the validation annotation file")
    train = read_data(args, "classification")
    held_out = argparse.Namespace(**{**vars(args), "data": args.val, "split": args.val_split,
                                     "videos": args.val_videos or args.videos})  # fmt: skip
    videos_flag = "--val-videos" if args.val_videos else "--videos"
    val = read_data(
        held_out, "classification", {"data": "--val", "videos": videos_flag, "split": "--val-split"}
    )
    from ..apps.evaluation.probe import check_pair

    try:  # before the model loads: labels, single- or multi-label, clips in both
        check_pair(train, val, train_name=args.data, val_name=f"--val {args.val}")
    except ValueError as err:
        raise UsageError(str(err)) from None
    loaded = load_model(args, text=False)
    from ..apps.evaluation.probe import run_probe

    record = run_probe(loaded.model, train, val, loaded.cache, epochs=args.epochs,
                       learning_rate=args.learning_rate, token_grid=args.token_grid,
                       **run_settings(args, loaded))  # fmt: skip
    return finish(args, record)
