"""`videoprism copies`: which videos of an index (or parts of them) are copies of which."""

from __future__ import annotations

import argparse
import math

from ..constants import COPY_MIN_SECONDS, COPY_THRESHOLD
from .inputs import ray_target, storage_options
from .parser import UsageError, add_command, add_storage_option, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    what = ("find the videos of an index that are copies of others (or hold parts of them), "
            "with where and at what offset")  # fmt: skip
    p = add_command(subparsers, "copies", what, copies)
    p.add_argument("index", help="an index folder (or LanceDB URI) written by videoprism index")
    threshold_help = ("the least similarity of two matched windows, in (0, 1], after centring "
                      f"on the index's mean (default {COPY_THRESHOLD})")  # fmt: skip
    p.add_argument("--threshold", type=_similarity, default=COPY_THRESHOLD, help=threshold_help)
    seconds_help = f"the shortest copy reported, in seconds (default {COPY_MIN_SECONDS})"
    p.add_argument("--min-seconds", type=positive(float), default=COPY_MIN_SECONDS,
                   help=seconds_help)  # fmt: skip
    ray_help = ("find them on Ray: a new local instance, or the cluster at ADDRESS (host:port "
                "of `ray start --head`, or auto)")  # fmt: skip
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=ray_help)
    add_storage_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (on stdout)")


def _similarity(text: str) -> float:
    """An argparse `type`: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1]; got {text!r}")
    return value


_similarity.__name__ = "similarity"  # argparse names the type in its message


def copies(args: argparse.Namespace) -> list:
    from ..apps import VideoIndex
    from ..apps.ray_session import RayUnavailable

    held = VideoIndex.load(args.index, storage_options=storage_options(args.storage_option))
    ray = ray_target(args.ray)
    try:
        groups = held.copies(threshold=args.threshold, min_seconds=args.min_seconds, ray=ray)
    except RayUnavailable as err:
        raise UsageError(f"--ray {args.ray}: {err}") from err
    if not args.json:
        _print(groups, len(held))
    return [g.as_dict() for g in groups]


def _print(groups: list, clips: int) -> None:
    from ..video.times import seconds_or_none

    total = sum(len(g.copies) for g in groups)
    print(f"{total} copies in {len(groups)} groups among the {clips} clips of the index")
    when = lambda s: ("" if seconds_or_none(s.start_s) is None  # noqa: E731
                      else f" [{s.start_s:.1f}s-{s.end_s:.1f}s]")  # fmt: skip
    for number, group in enumerate(groups, 1):
        print(f"group {number}: {len(group.paths)} videos")
        for c in group.copies:
            print(f"  {c.score:6.3f}  {c.b.path}{when(c.b)} = {c.a.path}{when(c.a)} "
                  f"(offset {c.offset_s:+.1f}s)")  # fmt: skip
