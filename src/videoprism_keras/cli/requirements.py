"""What each command and flag needs installed, checked once the arguments are parsed and
before anything else (Keras, the model, an output file): a missing package fails the
command in its first second, names the extra that installs it, and leaves nothing behind.

The packages are pip names; `extras.PACKAGES` says which module and extra each is.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..constants import BACKENDS
from ..extras import EXPORTERS, MissingExtra, message, missing
from ..presets import PRESET_FILES
from .parser import DEFAULT_PRESET

VIDEO = ("av", "pillow")  # decoding, and PIL's resize of the frames
TEXT = ("sentencepiece",)  # the LvT tokenizer
INDEX = ("lancedb", "pyarrow")
PLOT = ("matplotlib",)
PARQUET = ("pyarrow",)
RAY = ("ray[data]",)
SERVE = ("fastapi", "uvicorn", "python-multipart")
SHOTS = ("scenedetect-headless",)  # PySceneDetect, without OpenCV's GUI libraries

# Each command's own needs, whatever its flags; the flags' come from `_flag_needs`.
COMMANDS = {
    "info": (),
    "embed": VIDEO,
    "classify": VIDEO,
    "index": INDEX + VIDEO,
    "search": INDEX,
    "moments": VIDEO,  # and INDEX for an index (`_flag_needs`)
    "train": VIDEO,
    "finetune": VIDEO + TEXT,
    "export": (),
    "serve": SERVE + INDEX + VIDEO + TEXT,
    "copies": INDEX,
    "eval": INDEX + VIDEO + TEXT,  # each task's own: EVAL_TASKS
}
# `eval`'s tasks: the embedding cache (LanceDB), decoding, the tokenizer where text is
# embedded; `report` only reads JSON (no model, no backend).
EVAL_TASKS = {
    "retrieval": INDEX + VIDEO + TEXT,
    "classification": INDEX + VIDEO + TEXT,
    "probe": INDEX + VIDEO,
    "moments": INDEX + VIDEO + TEXT,
    "report": (),
}
# Commands that take the index's preset without --preset (or run no model: `copies`).
OWN_PRESET = ("index", "search", "serve", "info", "copies")
# A preset handle → the package that downloads it (a built-in name: huggingface_hub).
DOWNLOADERS = {"hf://": "huggingface_hub", "kaggle://": "kagglehub", "modelscope://": "modelscope"}


def check(args: argparse.Namespace) -> None:
    """Raises `MissingExtra` (its `cli_message` names the extra) if the command, as its
    flags ask for it, needs a package that is not installed."""
    needs = {}  # pip name → the flag that needs it ("" for the command itself)
    for package in INDEX if _optimizing(args) else _command_needs(args):
        needs.setdefault(package, "")
    for package, flag in _flag_needs(args):
        needs.setdefault(package, flag)
    absent = missing(needs)
    if absent:
        flags = [needs[p] for p in absent if needs[p]]
        text = message(" ".join([args.command, *dict.fromkeys(flags)]), absent, cli=True)
        raise MissingExtra(text, text)


def _command_needs(args: argparse.Namespace) -> tuple[str, ...]:
    if args.command == "eval":
        return EVAL_TASKS.get(getattr(args, "task", None), COMMANDS["eval"])
    return COMMANDS[args.command]


def _eval_report(args: argparse.Namespace) -> bool:
    """`eval report`: merges result JSON files; no model, no backend, no preset."""
    return args.command == "eval" and getattr(args, "task", None) == "report"


def _flag_needs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(package, the flag that needs it, or "" where the command does whatever its flags)."""
    flag = lambda name: getattr(args, name, None)  # noqa: E731
    needs = []
    no_model = args.command in ("info", "copies") or _optimizing(args) or _eval_report(args)
    if not no_model:
        backend, said = _backend(args)
        needs += [(backend, said)] if backend else []
    if flag("plot"):
        # Classification plots show the clip, search plots frame strips: both decode video.
        needs += [(p, "--plot") for p in PLOT + VIDEO]
    output = str(flag("output") or "")
    if args.command == "embed" and output.endswith(".parquet"):
        needs += [(p, f"-o {Path(output).name}") for p in PARQUET]
    elif args.command == "embed" and "://" in output:  # reached through pyarrow's file systems
        needs += [(p, f"-o {output}") for p in PARQUET]
    if args.command == "finetune":
        for name in ("pairs", "eval"):
            if str(flag(name) or "").endswith(".parquet"):
                needs += [(p, "") for p in PARQUET]
    if flag("ray"):
        needs += [(p, "--ray") for p in RAY]
    if flag("shots"):
        needs += [(p, "--shots") for p in SHOTS]
    if args.command == "classify" and not flag("head"):
        needs += [(p, "") for p in TEXT]  # the labels' embeddings
    if args.command == "search":
        if flag("text") is not None:
            needs += [(p, "--text") for p in TEXT]
        if flag("video") is not None:
            needs += [(p, "--video") for p in VIDEO]
    if args.command == "moments":
        needs += _moments_needs(args)
    engine = flag("engine")
    if engine not in (None, "auto", "keras") and not no_model:  # "auto" takes what is there
        from ..engine.choice import needs as engine_needs
        from .engines import precision

        backend = _backend(args)[0] or "jax"
        needs += [(p, f"--engine {engine}")
                  for p in engine_needs(engine, precision(flag("dtype")), backend)]  # fmt: skip
    if args.command == "export":
        backend, _ = _backend(args)
        for package in EXPORTERS.get((args.format, backend), ()):
            needs.append((package, f"--format {args.format}"))
    downloader = None if _eval_report(args) else _downloader(args)
    if downloader:
        needs.append((downloader, f"--preset {flag('preset')}" if flag("preset") else ""))
    return needs


def _optimizing(args: argparse.Namespace) -> bool:
    """`index --optimize`: the index's maintenance, no model, no video."""
    return args.command == "index" and getattr(args, "optimize", None) is not None


def _moments_needs(args: argparse.Namespace) -> list[tuple[str, str]]:
    needs = [(p, "") for p in INDEX] if any(_is_index(s) for s in args.sources) else []
    if args.text is not None:
        needs += [(p, "--text") for p in TEXT]
    return needs


def _is_index(source: str) -> bool:
    from .moments import is_index  # the command's own test: index mode, or video files

    return is_index(source)


def _downloader(args: argparse.Namespace) -> str | None:
    """The package that fetches the preset, if it is not a local path. Without --preset,
    `index`, `search` and `serve` take the index's (checked when it is read)."""
    preset = getattr(args, "preset", None)
    if preset is None:
        if args.command == "moments" and any(_is_index(s) for s in args.sources):
            return None
        # A trained head (`classify --head`) holds its whole backbone: nothing to fetch.
        if args.command in OWN_PRESET or getattr(args, "head", None):
            return None
        preset = DEFAULT_PRESET
    for prefix, package in DOWNLOADERS.items():
        if preset.startswith(prefix):
            return package
    # A built-in name is downloaded from Hugging Face; a path (found or not), another handle
    # or a misspelt name is the loader's to judge, in its own words.
    return "huggingface_hub" if preset in PRESET_FILES else None


def _backend(args: argparse.Namespace) -> tuple[str | None, str]:
    """The backend the command will run on, as `_use_backend` and Keras will choose it, and
    the flag that chose it ("" for the default); None where Keras decides (its own config)."""
    if getattr(args, "backend", None):
        return args.backend, f"--backend {args.backend}"
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen in BACKENDS:
        return chosen, f"(KERAS_BACKEND={chosen})"
    if chosen:  # another of Keras' backends (numpy, openvino): Keras' own to check
        return None, ""
    if missing(BACKENDS) != list(BACKENDS):
        # One is installed: JAX is ours to pick if it is there, else Keras picks.
        return ("jax", "") if not missing(["jax"]) else (None, "")
    return "jax", ""  # none at all: ask for ours
