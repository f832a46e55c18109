"""What the engines share: importing OpenVINO and NNCF without their usage reports, the
process's one OpenVINO Core, the thread count, and running a batch through an artefact of a
fixed batch one clip at a time."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np


def import_openvino() -> ModuleType:
    """`openvino`, imported without the usage report its import sends by default (to
    Google Analytics, from a process forked beside JAX's threads): the user runs
    VideoPrism, maybe without knowing OpenVINO is under it. OpenVINO skips the report in
    CI, which `CI=true` tells it while it imports; the variable is then as it was."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved
    return openvino


@functools.cache
def openvino_core() -> object:
    """The process's one `openvino.Core`, its CPU plugin loaded (under `kept_signal_stack`).

    One Core, so the CPU plugin is loaded once and never unloaded: see `kept_signal_stack`
    for what loading and unloading plugins does to the process otherwise."""
    with kept_signal_stack():
        core = import_openvino().Core()
        core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # loads the plugin now
    return core


def one_clip(model: Any) -> Any:
    """The OpenVINO `model` with its batch fixed to one clip (its other axes are fixed by the
    artefact), as it is checked (`build.checked_config`) and run (`OpenVINORunner`):
    OpenVINO compiles a free batch into slower kernels (int8 1.4x the time on the base
    model), and on a CPU a batch is no faster per clip than its clips one by one
    (`per_batch` loops). Its generated kernels also differ between the two, so the check
    must see the shape that runs."""
    model.reshape({port.get_any_name(): [1, *port.get_partial_shape()[1:]]
                   for port in model.inputs})  # fmt: skip
    return model


class _SignalStack(ctypes.Structure):
    """Linux's `stack_t`, what `sigaltstack(2)` reads and writes."""

    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


@contextlib.contextmanager
def kept_signal_stack() -> Iterator[None]:
    """The calling thread's alternate signal stack as it was before the block.

    OpenVINO's CPU plugin (2026.4) gives the thread that loads it a signal stack of its own
    and, when unloaded, puts back the one it found if its own is still in place. Two
    plugins (two `Core`s: NNCF makes its own) unloaded in the order they were loaded
    therefore leave the thread on the first one's freed stack, and the next signal that
    thread takes (a Ctrl-C, the SIGTERM that stops a server) kills the process with a
    segmentation fault. Putting the thread's stack back after each load makes every later
    unload leave it alone. Linux only (where `stack_t` has this layout and OpenVINO does
    this); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved = _SignalStack()
    known = libc.sigaltstack(None, ctypes.byref(saved)) == 0
    try:
        yield
    finally:
        if known:
            libc.sigaltstack(ctypes.byref(saved), None)


def import_nncf() -> ModuleType:
    """`nncf`, which reports each use unless it believes it runs in CI (`NNCF_CI`)."""
    import_openvino()  # NNCF imports it
    os.environ.setdefault("NNCF_CI", "1")
    import nncf

    return nncf


def threads() -> int:
    """The cores this process may run on (its affinity, which `taskset` and containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def per_batch(
    run: Callable[[np.ndarray, np.ndarray], dict], fixed_batch: int | None
) -> Callable[[np.ndarray, np.ndarray], dict]:
    """`run` for any batch: as it is for a free batch, else one clip at a time (an
    artefact exported with a batch of 1), the outputs stacked."""
    if fixed_batch is None:
        return run
    if fixed_batch != 1:
        raise ValueError(
            f"an engine artefact takes a free batch or a batch of 1; got {fixed_batch}"
        )

    def looped(pixels: np.ndarray, mask: np.ndarray) -> dict:
        outs = [run(pixels[i : i + 1], mask[i : i + 1]) for i in range(len(pixels))]
        return {key: np.concatenate([out[key] for out in outs]) for key in outs[0]}

    return looped
