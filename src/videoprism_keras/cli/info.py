"""`videoprism info`: the presets, what the cache holds, the versions and the backend."""

from __future__ import annotations

import argparse

from .parser import add_command


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "info", "versions, installed extras, backend, devices, presets "
                    "and cache (loads no model)", info)  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output (on stdout)")


def info(args: argparse.Namespace) -> dict:
    import keras

    from .. import __version__
    from ..hub import cache_root
    from ..presets import PRESETS

    cache = cache_root()
    cached = sorted(p.name for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []
    result = {"videoprism_keras": __version__, "keras": keras.__version__,
              "backend": keras.backend.backend(), "cache": str(cache), "cached": cached,
              "presets": PRESETS}  # fmt: skip
    if not args.json:
        print(
            f"videoprism-keras {__version__}, Keras {keras.__version__}, "
            f"backend {result['backend']}"
        )
        print(f"cache: {cache} ({', '.join(cached) or 'empty'})\n")
        for name, meta in PRESETS.items():
            mark = "*" if name in cached else " "
            size = f"{meta['params'] / 1e6:5.0f}M  {meta['num_frames']:2d} frames"
            print(f"{mark} {name:32s} {size}  {meta['description']}")
    return result
