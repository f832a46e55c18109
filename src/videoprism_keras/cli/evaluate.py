"""`videoprism eval`: the paper's benchmarks, and your own data, measured one way.

    videoprism eval retrieval MSRVTT_JSFUSION_test.csv --format msrvtt --videos videos/ -o results/
    videoprism eval classification val.csv --format kinetics --videos val/ -o results/
    videoprism eval probe train.csv --val val.csv --format kinetics --videos k400/ -o results/
    videoprism eval moments charades_sta_test.txt --format charades-sta --videos Charades_v1/
    videoprism eval report results/*.json -o report.md

Each task writes one JSON per (model, dataset, task) under -o; `report` merges them. The
flags and steps every task shares are in `evaluate_common`; probe, moments and report are
in their own modules.
"""

from __future__ import annotations

import argparse

from . import evaluate_moments, evaluate_probe, evaluate_report
from .evaluate_common import (
    add_data_options,
    add_run_options,
    check_templates,
    finish,
    load_model,
    read_data,
    run_settings,
)
from .parser import UsageError, add_command


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
    c.add_argument("--templates", default="official", metavar="SET|FILE",
                   help="how each class name becomes text to match: official (the "
                   "official demo's one sentence), ensemble (several sentences, their "
                   "embeddings averaged), or a text file of your own, one sentence a line with "
                   "{} where the class name goes (default: official)")  # fmt: skip
    evaluate_probe.add_parser(tasks)
    evaluate_moments.add_parser(tasks)
    evaluate_report.add_parser(tasks)


def _no_task(args: argparse.Namespace) -> None:  # argparse requires a task first
    raise UsageError("eval needs a task: retrieval, classification, probe, moments or report")


def retrieval(args: argparse.Namespace) -> dict:
    dataset = read_data(args, "retrieval")
    loaded = load_model(args)
    from ..apps.evaluation.retrieval import run_retrieval

    record = run_retrieval(loaded.model, loaded.tokenizer, dataset, loaded.cache(dataset),
                           **run_settings(args, loaded))  # fmt: skip
    return finish(args, record)


def classification(args: argparse.Namespace) -> dict:
    check_templates(args.templates)  # a bad set or file: said before the data is read
    dataset = read_data(args, "classification")
    loaded = load_model(args)
    from ..apps.evaluation.classification import run_classification

    record = run_classification(loaded.model, loaded.tokenizer, dataset, loaded.cache(dataset),
                                templates=args.templates, **run_settings(args, loaded))  # fmt: skip
    return finish(args, record)
