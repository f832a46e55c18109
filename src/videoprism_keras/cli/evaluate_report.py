"""`videoprism eval report`: the result JSON of `eval` runs merged into one table, beside
the published numbers. No model, no backend."""

from __future__ import annotations

import argparse

from .parser import add_command


def add_parser(tasks: argparse._SubParsersAction) -> None:
    what = ("merge result JSON (of eval retrieval, classification, probe, moments) into one "
            "Markdown and CSV table, beside the published numbers")  # fmt: skip
    p = add_command(tasks, "report", what, report)
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result JSON files, or folders of them (eval … -o)")  # fmt: skip
    p.add_argument("-o", "--output", help="write the Markdown table here (default: print it)")
    p.add_argument("--csv", help="write the table as CSV here too")
    p.add_argument("--json", action="store_true", help="machine-readable output (on stdout)")


def report(args: argparse.Namespace) -> list[dict]:
    from dataclasses import asdict

    from ..apps.evaluation.report import report_of
    from ..apps.evaluation.results import write_text

    merged = report_of(args.results)  # every file read and checked before anything is written
    markdown = merged.markdown()
    for flag, path, text in (("-o", args.output, markdown), ("--csv", args.csv, merged.csv())):
        if path:
            try:
                write_text(text, path)
            except OSError as err:
                raise OSError(f"{flag} {path}: {err.strerror or err}") from None
            if not args.json:
                print(f"wrote {path} ({len(merged.rows)} rows)")
    if not args.output and not args.json:
        print(markdown, end="")
    return [asdict(row) for row in merged.rows]
