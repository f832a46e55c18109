"""`videoprism eval`: the command group, each task's parser from its own module.

`evaluate` holds the group, retrieval, classification and the helpers every task shares
(the data and run flags, reading the data, loading the model, the record's summary);
`evaluate_probe`, `evaluate_moments` and `evaluate_report` use them. Registering those
here, not in `evaluate`, keeps the imports one way (no loop)."""

from __future__ import annotations

import argparse

from . import evaluate, evaluate_moments, evaluate_probe, evaluate_report


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    tasks = evaluate.add_parsers(subparsers)
    evaluate_probe.add_parser(tasks)
    evaluate_moments.add_parser(tasks)
    evaluate_report.add_parser(tasks)
