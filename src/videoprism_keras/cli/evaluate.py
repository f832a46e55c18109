"""`videoprism eval`: the paper's benchmarks, and your own data, measured one way.

    videoprism eval retrieval MSRVTT_JSFUSION_test.csv --format msrvtt --videos videos/ -o results/
    videoprism eval classification val.csv --format kinetics --videos val/ -o results/
    videoprism eval probe train.csv --val val.csv --format kinetics --videos k400/ -o results/
    videoprism eval moments charades_sta_test.txt --format charades-sta --videos Charades_v1/
    videoprism eval report results/*.json -o report.md

Each task writes one JSON per (model, dataset, task) under -o; `report` merges them.
"""

from __future__ import annotations

import argparse

from ..constants import EVAL_FORMATS
from . import evaluate_moments, evaluate_probe, evaluate_report
from .parser import UsageError, add_command, add_model_options, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    what = "measure a model on a benchmark (or your own data) the paper's way; merge results"
    p = add_command(subparsers, "eval", what, _no_task)
    task_help = "one of these (videoprism eval TASK --help: its flags)"
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK", help=task_help)
    r = add_command(tasks, "retrieval", "text→video and video→text recall, median and mean "
                    "rank", retrieval)  # fmt: skip
    add_data_options(r)
    add_run_options(r)
    c = add_command(tasks, "classification", "zero-shot top-1/top-5, mean per-class accuracy "
                    "(mAP for multi-label sets)", classification)  # fmt: skip
    add_data_options(c)
    add_run_options(c)
    evaluate_probe.add_parser(tasks)
    evaluate_moments.add_parser(tasks)
    evaluate_report.add_parser(tasks)


def add_data_options(p: argparse.ArgumentParser, positional: str = "data") -> None:
    """A dataset as the user has it: its annotation file, its format, its videos."""
    p.add_argument(positional, help="the annotation file (CSV/parquet, or the benchmark's own)")
    p.add_argument("--format", choices=EVAL_FORMATS, help="the annotation file's format "
                   "(default: csv, or what the file name says)")  # fmt: skip
    p.add_argument("--videos", help="the folder holding the videos (default: paths as given, "
                   "relative to the annotation file)")  # fmt: skip
    p.add_argument("--split", help="which split, where one file holds several")


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
    p.add_argument("--cache", help="the embedding cache folder (default: ~/.cache/videoprism/eval)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="embed on Ray: a new local instance, or the cluster at ADDRESS",
    )
    p.add_argument("-o", "--output", help="folder for the result JSON (default: print only)")
    p.add_argument(
        "--bootstrap",
        type=positive(int),
        default=1000,
        help="bootstrap samples for the 95%% intervals",
    )
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")


def _no_task(args: argparse.Namespace) -> None:  # argparse requires a task first
    raise UsageError("eval needs a task: retrieval, classification, probe, moments or report")


def retrieval(args: argparse.Namespace) -> dict:
    raise UsageError("eval retrieval: being built (issue 29)")


def classification(args: argparse.Namespace) -> dict:
    raise UsageError("eval classification: being built (issue 29)")
