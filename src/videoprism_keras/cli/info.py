"""`videoprism info`: the versions, the extras installed and missing, the backends, the
accelerators, the presets and what the cache holds. Loads no model and no Keras (read from
package metadata: `environment`), so it answers at once, even where Keras is broken."""

from __future__ import annotations

import argparse
import platform
import sys

from ..constants import VERSION
from ..native_logs import held_stderr
from . import environment
from .parser import add_command


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "info", "versions, installed extras, backend, devices, presets "
                    "and cache (loads no model)", info)  # fmt: skip
    devices_help = "also list the devices as the backend sees them (imports it: seconds)"
    p.add_argument("--devices", action="store_true", help=devices_help)
    p.add_argument("--json", action="store_true", help="machine-readable output (on stdout)")


def info(args: argparse.Namespace) -> dict:
    from ..hub import cache_root
    from ..presets import PRESETS

    backend, chosen_by = environment.backend_choice(getattr(args, "backend", None))
    cache = cache_root()
    contents = environment.cache_contents(cache)
    result = {
        "videoprism_keras": VERSION,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "keras": environment.version_of("keras"),
        "backend": backend,
        "backend_chosen_by": chosen_by,
        "backends": environment.backends(),
        "extras": environment.extras_status(),
        "accelerators": environment.accelerators(),
        "cache": str(cache),
        "cached": [entry["name"] for entry in contents if entry["folder"]],
        "cache_contents": contents,
        "presets": PRESETS,
    }
    if args.devices:
        with held_stderr():  # TensorFlow's and others' load-time lines
            result["devices"] = environment.backend_devices(backend)
    if not args.json:
        _print(result)
    return result


def _print(result: dict) -> None:
    print(f"videoprism-keras {result['videoprism_keras']}, Python {result['python']} "
          f"({result['python_executable']})")  # fmt: skip
    keras = result["keras"] or "not installed"
    print(f"Keras {keras}; backend {result['backend']} ({result['backend_chosen_by']})")
    installed = [f"{name} {v}" for name, v in result["backends"].items() if v]
    absent = [name for name, v in result["backends"].items() if not v]
    print(f"backends: {', '.join(installed) or 'none'}"
          + (f" (not installed: {', '.join(absent)})" if absent else ""))  # fmt: skip
    devices = result.get("devices") or result["accelerators"]
    shown = ", ".join(devices) if devices else "CPU only (no GPU or TPU device found)"
    hint = "" if "devices" in result else " (--devices: as the backend sees them)"
    print(f"devices: {shown}{hint}")
    extras = result["extras"]
    if extras is None:
        print("extras: unknown (no package metadata: install with pip install -e .)")
    else:
        print(f"extras installed: {', '.join(e for e, s in extras.items() if s['installed'])}")
        for extra, status in extras.items():
            if not status["installed"]:
                print(f"  missing {extra}: {', '.join(status['missing'])}")
        wanted = [e for e, s in extras.items() if not s["installed"]]
        if wanted:
            first = "cli" if "cli" in wanted else wanted[0]  # cli: every command works
            print(f'  to add one: pip install "videoprism-keras[{first}]" (from a clone: '
                  f'pip install ".[{first}]")')  # fmt: skip
    contents = result["cache_contents"]
    size = sum(entry["bytes"] for entry in contents)
    held = f"{len(contents)} entries, {_size(size)}" if contents else "empty"
    print(f"cache: {result['cache']} ({held})\n")
    cached = set(result["cached"])
    for name, meta in result["presets"].items():
        mark = "*" if name in cached else " "
        size = f"{meta['params'] / 1e6:5.0f}M  {meta['num_frames']:2d} frames"
        print(f"{mark} {name:32s} {size}  {meta['description']}")
    print("\n* in the cache")


def _size(count: float) -> str:
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            break
    return f"{count:.1f} {unit}"
