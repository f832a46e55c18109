"""Whether the bfloat16 fast mode is fast on this machine, measured when it is asked for.

bfloat16 GEMMs beat float32 only where the CPU and the backend's GEMM library have a fast
path for them (AVX512-BF16 or AMX-BF16 with oneDNN; XLA's CPU backend has none): on a CPU
without one they are emulated and slower, and even with the instruction a library may not
use it (benchmarks/README.md, "The approximate fast mode"). Flags cannot tell, so the
first bfloat16 model of a process times one GEMM of the model's shape both ways and warns
when bfloat16 does not pay, naming the CPU features it found.
"""

import functools
import time
import warnings

import keras
import numpy as np
from keras import ops

# One MLP projection of a base clip's frame batch, in rows × in × out: big enough to run
# at the GEMM's steady speed, small enough to time at a model's construction (the probe's
# cost: benchmarks/README.md, "The approximate fast mode").
_SHAPE = (2048, 768, 3072)
_FAST_ENOUGH = 1.1  # bfloat16 must be at least this much faster to be worth its error
_FEATURES = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


def cpu() -> tuple[str, list[str]]:
    """The CPU's model name and which of the bfloat16 features it reports (Linux)."""
    name, flags = "this CPU", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "this CPU":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, [label for flag, label in _FEATURES.items() if flag in flags]


def _seconds(dtype: str) -> float:
    rows, inner, out = _SHAPE
    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.normal(size=(rows, inner)), dtype)
    b = ops.convert_to_tensor(rng.normal(size=(inner, out)), dtype)
    done = lambda c: ops.convert_to_numpy(ops.cast(c[:1, :1], "float32"))  # noqa: E731
    done(ops.matmul(a, b))  # warm-up: library dispatch, first-touch pages
    times = []
    for _ in range(3):
        start = time.perf_counter()
        done(ops.matmul(a, b))  # waits for the whole product (JAX dispatches asynchronously)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


@functools.cache
def speedup() -> float:
    """float32 GEMM time / bfloat16 GEMM time on this machine and backend (once a process)."""
    return _seconds("float32") / _seconds("bfloat16")


def warn_if_slow(compute_dtype: str) -> None:
    """A one-line warning when a bfloat16 model would run slower than the float32 default."""
    if compute_dtype != "bfloat16":
        return
    ratio = speedup()
    if ratio >= _FAST_ENOUGH:
        return
    name, found = cpu()
    features = ", ".join(found) or "neither AVX512-BF16 nor AMX-BF16"
    warnings.warn(
        f"videoprism: bfloat16 is not faster than float32 here: a bfloat16 matrix product runs "
        f"at {ratio:.2f}x float32's speed on {name} ({features}; Keras backend "
        f"{keras.backend.backend()}). Use the default float32, which is also exact, unless "
        "memory is what you need.",
        stacklevel=3,
    )
