"""`videoprism eval probe` (issue 29, being built)."""

from __future__ import annotations

import argparse

from .parser import UsageError, add_command


def add_parser(tasks: argparse._SubParsersAction) -> None:
    add_command(tasks, "probe", "being built (issue 29)", probe)


def probe(args: argparse.Namespace) -> dict:
    raise UsageError("eval probe: being built (issue 29)")
