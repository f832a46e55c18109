"""`videoprism eval report` (issue 29, being built)."""

from __future__ import annotations

import argparse

from .parser import UsageError, add_command


def add_parser(tasks: argparse._SubParsersAction) -> None:
    add_command(tasks, "report", "being built (issue 29)", report)


def report(args: argparse.Namespace) -> dict:
    raise UsageError("eval report: being built (issue 29)")
