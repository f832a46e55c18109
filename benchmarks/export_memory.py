"""Peak memory and time of exporting the base model to ONNX from each Keras backend.

    flock /tmp/heavy.lock .venv/bin/python benchmarks/export_memory.py [--backends jax torch]

The VideoPrism-B video-only model with the random weights of seed 0 (drawn once under
JAX and cached under `--cache`, as benchmarks/engines.py does), exported by our
`export(format="onnx", num_frames=16, size=288)` with a free batch, each backend in its
own fresh process. Reported per backend: the export's wall time (the model already
built), the process's peak resident memory before and after the export, and, for
TensorFlow, whose ONNX export runs under JAX in a child process, that child's peak; the
artefact's size and its input's batch axis (symbolic: a name). The artefacts are deleted
afterwards unless `--keep`.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from speed import cpu_model

PRESET = "videoprism_public_v1_base"
SEED = 0
FRAMES, SIZE = 16, 288


def weights_file(cache: Path) -> Path:
    return cache / f"videoprism_export_memory_base_seed{SEED}" / "weights.npz"


def draw_weights(path: Path) -> None:
    """The base model's random weights of seed 0 under JAX, saved to `path`."""
    import keras

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    keras.utils.set_random_seed(SEED)
    model = vp.VideoPrismBackbone(**PRESET_CONFIGS[PRESET])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"w{i}": w for i, w in enumerate(model.get_weights())})


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def export_here(weights: Path, out: Path) -> dict:
    """In the backend's own process: build, load the weights, export; the figures."""
    import keras

    import videoprism_keras as vp
    from videoprism_keras.export import export
    from videoprism_keras.presets import PRESET_CONFIGS

    model = vp.VideoPrismBackbone(**PRESET_CONFIGS[PRESET])
    stored = np.load(weights)
    model.set_weights([stored[f"w{i}"] for i in range(len(stored.files))])
    del stored
    before = peak_mb(resource.RUSAGE_SELF)
    start = time.perf_counter()
    export(model, out, format="onnx", num_frames=FRAMES, size=SIZE, verbose=False)
    seconds = time.perf_counter() - start
    import onnx

    graph = onnx.load(str(out), load_external_data=False).graph
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    return {
        "backend": keras.backend.backend(),
        "params": model.count_params(),
        "seconds": seconds,
        "peak_before_mb": before,
        "peak_mb": peak_mb(resource.RUSAGE_SELF),
        "child_peak_mb": peak_mb(resource.RUSAGE_CHILDREN),
        "size_mb": os.path.getsize(out) / 2**20,
        "batch": batch.dim_param or batch.dim_value,
    }


def run_child(backend: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                          text=True)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["jax", "torch", "tensorflow"])
    parser.add_argument("--cache", default=tempfile.gettempdir(),
                        help="folder of the cached weights (default: %(default)s)")  # fmt: skip
    parser.add_argument("--dir", help="folder of the artefacts (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the artefacts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # weights, out
    parser.add_argument("--draw", help=argparse.SUPPRESS)  # weights
    args = parser.parse_args()
    if args.draw:
        return draw_weights(Path(args.draw))
    if args.child:
        return print(json.dumps(export_here(Path(args.child[0]), Path(args.child[1]))))

    weights = weights_file(Path(args.cache))
    if not weights.exists():
        done = run_child("jax", "--draw", str(weights))
        if done.returncode:
            sys.exit(f"drawing the weights failed:\n{done.stderr[-2000:]}")
    out_dir = Path(args.dir or tempfile.mkdtemp(prefix="videoprism-export-memory-"))
    size_mb = weights.stat().st_size / 2**20
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; base model (seed {SEED}), "
          f"clip {FRAMES} x {SIZE}^2, weights {size_mb:.0f} MB (.npz)")  # fmt: skip
    print(f"{'backend':<11} {'export s':>8} {'peak MB':>8} {'(before)':>8} {'child MB':>8} "
          f"{'onnx MB':>8}  batch axis")  # fmt: skip
    for backend in args.backends:
        out = out_dir / f"base_{backend}.onnx"
        done = run_child(backend, "--child", str(weights), str(out))
        if done.returncode:
            tail = "\n".join(done.stderr.strip().splitlines()[-4:])
            print(f"{backend:<11} failed (exit {done.returncode}):\n{tail}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        child = f"{row['child_peak_mb']:8.0f}" if row["child_peak_mb"] else f"{'-':>8}"
        figures = f"{row['seconds']:8.1f} {row['peak_mb']:8.0f} {row['peak_before_mb']:8.0f}"
        print(f"{backend:<11} {figures} {child} {row['size_mb']:8.0f}  {row['batch']!r}")
        if not args.keep:
            out.unlink(missing_ok=True)
    print(
        "peak MB: the backend's process (the model built and its weights loaded before "
        "it: '(before)'); child MB: the routed JAX export's process (TensorFlow)"
    )


if __name__ == "__main__":
    main()
