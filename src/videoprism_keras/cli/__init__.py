"""`videoprism`: embed, classify, index and search videos from the shell.

    videoprism info
    videoprism embed clip.mp4 other.mp4 -o embeddings.npz
    videoprism classify clip.mp4 --labels "drumming,cooking,dancing" --plot labels.png
    videoprism index videos/ -o my_index --clip-seconds 10
    videoprism search my_index --text "a person playing drums" --plot hits.png
    videoprism moments my_index --video goal.mp4 --top-k 3 --json
    videoprism moments match.mp4 --text "a goal" --plot timeline.png
    videoprism serve my_index --port 8000
    videoprism copies my_index --min-seconds 5
    videoprism train labelled/ -o head.keras --epochs 20
    videoprism classify clip.mp4 --head head.keras
    videoprism finetune pairs.csv -o run/ --eval held_out.csv --lora-rank 8
    videoprism eval retrieval MSRVTT_JSFUSION_test.csv --format msrvtt --videos videos/
    videoprism export --format onnx -o videoprism.onnx --num-frames 16 --size 288

Errors are one line on stderr and a non-zero exit code (2: a usage error).
"""

# The CLI only parses, calls the library and prints. Each module below adds its commands
# to the parser (`add_parsers`) and answers them (the function set as `run`); a new command
# is one function and its parser entry in one of them (a new module: one more line here).
# They import the library inside those functions, after checking the arguments, so that
# `--help`, `info` and usage errors load no Keras: they answer at once.

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from ..native_logs import held_while_importing
from . import (
    classify,
    copies,
    embed,
    evaluate,
    export,
    index,
    info,
    moments,
    requirements,
    serve,
    train,
)
from .parser import UsageError, build

__all__ = ["UsageError", "main"]

COMMAND_MODULES = (info, embed, classify, index, moments, copies, train, export, serve, evaluate)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `videoprism` with `argv` (default: the command line) → the exit code: 0, 1 for
    an error, 2 for a usage error, 130 when interrupted, 141 when the reader of stdout has
    gone (`| head`). What it changes in the process (the warning display, environment
    variables) is restored on return, so that it may be called in a process that goes on;
    only a stdout whose reader has gone stays sent to the null device."""
    try:
        args = build(__doc__, COMMAND_MODULES).parse_args(argv)
    except SystemExit as done:  # usage error (one line, already printed) or --help
        return done.code or 0
    except BrokenPipeError:  # `videoprism --help | head -1`
        return _reader_gone()
    quiet = held_while_importing("keras", "tensorflow")  # where a command first needs them
    with warnings.catch_warnings(), _restored_environment(), quiet:
        warnings.showwarning = _show_warning
        try:
            requirements.check(args)  # what to install, before Keras or any output
            _use_backend(args.backend)
            result = args.run(args)
            if getattr(args, "json", False):
                print(json.dumps(result, indent=2, default=str))
            sys.stdout.flush()  # a reader gone fails here, not in Python's flush at exit
        except BrokenPipeError:  # `videoprism info --json | head -1`
            return _reader_gone()
        except KeyboardInterrupt:
            print("videoprism: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # one clear line, not a traceback
            message = getattr(err, "cli_message", None) or str(err)  # said with CLI flags
            message = message.splitlines()[0] if message else type(err).__name__
            print(f"videoprism: error: {message}", file=sys.stderr)
            return 2 if isinstance(err, UsageError) else 1
    return 0


def _reader_gone() -> int:
    """The reader of stdout has gone: end quietly, with the exit code of a process that
    SIGPIPE ends (128 + 13), as other tools in a pipe do. stdout goes to the null device
    from here on, so that what is still buffered fails nowhere (Python flushes at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (an embedding host)
        pass
    return 141


_python_show_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings ("videoprism: …") as the one line they are, without a source line."""
    if str(message).startswith("videoprism:"):
        print(message, file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


# What `main` may set in the environment: the backend, and TensorFlow's log level.
_ENVIRONMENT = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")


@contextlib.contextmanager
def _restored_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _use_backend(backend: str | None) -> None:
    """Keras reads KERAS_BACKEND once, when first imported: set it now, for the command
    to import Keras when it needs it (quietly, `main` sees to it: TensorFlow's libraries
    log to the terminal as they load)."""
    if backend and "keras" in sys.modules:  # main() called in a process with Keras loaded
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise UsageError(f"--backend {backend}: Keras is already loaded with {current}")
    if backend:
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # what TensorFlow logs once loaded
    from ..backend import choose_default_backend

    choose_default_backend()
