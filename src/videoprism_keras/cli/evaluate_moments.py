"""`videoprism eval moments` (issue 29, being built)."""

from __future__ import annotations

import argparse

from .parser import UsageError, add_command


def add_parser(tasks: argparse._SubParsersAction) -> None:
    add_command(tasks, "moments", "being built (issue 29)", moments)


def moments(args: argparse.Namespace) -> dict:
    raise UsageError("eval moments: being built (issue 29)")
