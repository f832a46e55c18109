"""The argument parser: one-line usage errors, positive numbers, and the option groups
several commands share. A command module adds its own sub-parser with `add_command`.

Nothing here imports Keras: `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import NoReturn

from ..constants import (
    BACKENDS,
    DEFAULT_SOFT_CAP,
    ENGINE_ENV,
    ENGINES,
    KERAS_DTYPES,
    MODEL_DTYPES,
    VERSION,
)

DEFAULT_PRESET = "videoprism_lvt_public_v1_base"
BACKEND_HELP = (
    "Keras backend, before or after the command (default: $KERAS_BACKEND, else jax where installed)"
)


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each flag's help ends with its default, where it has one that the help does not
    already say: not for an unset flag (None), a switch (False) or an empty list, which
    would only be noise."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (default in (None, False, argparse.SUPPRESS) or default == []
                or "default" in text or "%(default)" in text):  # fmt: skip
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """Usage errors are one line (and exit code 2), like every other error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive(kind: type, zero: bool = False) -> Callable[[str], int | float]:
    """An argparse `type` that accepts a finite number above zero of `kind` (int, float),
    or zero too with `zero`."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            expected = "a number >= 0" if zero else "a positive number"
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def build(description: str, modules: Iterable[ModuleType]) -> Parser:
    """The `videoprism` parser: `--backend`, then each module's commands (`add_parsers`)."""
    parser = Parser(prog="videoprism", description=description)
    parser.add_argument("--version", action="version", version=f"videoprism-keras {VERSION}")
    parser.add_argument("--backend", choices=BACKENDS, help=BACKEND_HELP)
    commands_help = "one of these (videoprism COMMAND --help: its flags)"
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       help=commands_help)  # fmt: skip
    for module in modules:
        module.add_parsers(subparsers)
    return parser


def add_command(subparsers: argparse._SubParsersAction, name: str, help: str,
                run: Callable[[argparse.Namespace], object]) -> Parser:  # fmt: skip
    """A sub-command that `main` answers with `run(args)`; it takes `--backend` too."""
    common = Parser(add_help=False)
    # SUPPRESS keeps a top-level --backend when the command's own is not given.
    common.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                        help=BACKEND_HELP)  # fmt: skip
    command = subparsers.add_parser(name, help=help, description=help, parents=[common])
    command.set_defaults(run=run)
    return command


def add_model_options(p: argparse.ArgumentParser, text: bool = True,
                      engine: bool = True) -> None:  # fmt: skip
    """The model, its sampling and how a command reports (read by `ModelOptions`); with
    `engine`, --engine and --dtype int8 (inference), else only Keras' dtypes (training)."""
    preset_help = "preset name, directory, hf://, kaggle://, modelscope:// or official .npz "
    preset_help += f"(default {DEFAULT_PRESET}; for an index, the one it was built with)"
    p.add_argument("--preset", help=preset_help)
    cap_help = f"attention logit cap, for .npz checkpoints (default {DEFAULT_SOFT_CAP:g})"
    p.add_argument("--soft-cap", type=positive(float), help=cap_help)
    add_dtype_option(p, "compute dtype (default float32, the official numerics; for an index, "
                     "the one it was built with)", engine)  # fmt: skip
    if text:
        tokenizer_help = (
            "SentencePiece model (default: the preset's own; for search and "
            "serve, the index's first)"
        )
        p.add_argument("--tokenizer", help=tokenizer_help)
    p.add_argument("--batch-size", type=positive(int), default=4, help="videos (or clips) "
                   "the model takes at a time; more is faster and needs more memory")  # fmt: skip
    add_sampling_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (on stdout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    strict_help = "fail if any input fails (default: skip it, say so, go on)"
    p.add_argument("--strict", action="store_true", help=strict_help)


class _OldFlag(argparse.Action):
    """An old spelling of a flag, kept for one release: it works, and says what replaces it."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = self.option_strings[0]
        if option_string != new:
            print(f"videoprism: warning: {option_string} is deprecated and will be removed in "
                  f"the next release; use {new}", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def add_dtype_option(p: argparse.ArgumentParser, help: str, engine: bool = True) -> None:
    """--dtype, and with `engine` --engine (inference): the precision tiers and what runs them."""
    if not engine:
        p.add_argument("--dtype", choices=KERAS_DTYPES, help=help + ". bfloat16 is an "
                       "approximate mode, faster only on some CPUs (docs/speed.md)")  # fmt: skip
        return
    p.add_argument("--dtype", choices=MODEL_DTYPES, help=help + ". bfloat16 and int8 are "
                   "approximate, faster modes (docs/cli.md, Precision tiers)")  # fmt: skip
    engine_help = (
        "what runs the video model: auto picks the fastest installed for --dtype and says "
        f"which (default: ${ENGINE_ENV}, else auto; for an index, the one it was built with)"
    )
    p.add_argument("--engine", choices=ENGINES, help=engine_help)


def default_engine() -> str:
    """--engine where the flag is not given: ${ENGINE_ENV}, else "auto"; a usage error
    naming the variable if it names no engine."""
    engine = os.environ.get(ENGINE_ENV) or "auto"
    if engine not in ENGINES:
        raise UsageError(f"${ENGINE_ENV} must be one of {', '.join(ENGINES)} (the default "
                         f"--engine); got {engine!r}")  # fmt: skip
    return engine


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-frames", "--frames", dest="frames", type=positive(int),
                   action=_OldFlag, help="frames per clip (default: the model's)")  # fmt: skip
    p.add_argument("--size", type=positive(int), help="frame side in pixels (default: the model's)")


def add_window_options(p: argparse.ArgumentParser) -> None:
    """Long videos cut into windows, each one embedding with its start and end times."""
    clip_help = "cut videos into windows this long, one embedding each (default: whole videos)"
    p.add_argument("--clip-seconds", type=positive(float), help=clip_help)
    stride_help = "with --clip-seconds: from one window's start to the next (default: the window)"
    p.add_argument("--stride-seconds", type=positive(float), help=stride_help)


def add_storage_option(p: argparse.ArgumentParser) -> None:
    storage_help = "LanceDB storage option for an object-store index (repeat for several)"
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help=storage_help)  # fmt: skip


def add_ray_options(p: argparse.ArgumentParser) -> None:
    ray_help = ("run on Ray Data: a new local Ray instance, or the cluster at ADDRESS "
                "(host:port of `ray start --head`, or auto); SOURCES may then also be "
                "globs and .parquet/.csv lists (a 'path' column of paths or URIs)")  # fmt: skip
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=ray_help)
    p.add_argument("--workers", type=positive(int),
                   help="with --ray: model actors (default one per GPU, or 1)")  # fmt: skip
    p.add_argument("--num-gpus-per-worker", type=positive(float),
                   help="with --ray: GPUs each model actor holds (default 0: CPU)")  # fmt: skip
