"""XLA's CPU options against our JAX float32 forward pass: speed and exactness.

    .venv/bin/python benchmarks/jax_flags.py                    # base, 16 x 288^2
    .venv/bin/python benchmarks/jax_flags.py --layers 2 --repeats 3    # a quick screen
    .venv/bin/python benchmarks/jax_flags.py --one-process --repeats 7  # interleaved A/B

Each variant is a set of XLA_FLAGS (read once, when XLA starts, so each runs in its own
process): the base model (or its first `--layers` spatial layers and one temporal layer)
with the random weights of seed 0, one clip, compiled as `runtime.compile_inference`
compiles it, a warm-up, then the median of `--repeats` calls. Every variant runs once per
round, `--rounds` rounds in rotated order; its time is divided by the default's of the
same round (> 1: slower), the median of those ratios shown, and its features are compared
with the default's (largest difference relative to the largest feature).

`--one-process`: the same options given per compilation instead (`compile(compiler_options=
...)`, `ONE_PROCESS`): one model, one executable per variant, the calls interleaved round by
round in one process, so that a loaded machine slows every variant alike.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# name: XLA_FLAGS. jaxlib 0.10's XLA hands every dot to YNNPACK by default (a "__ynn_fusion"
# in the compiled HLO); the others hand it to oneDNN (what TensorFlow runs), to XNNPACK, or
# back to XLA's own emitter.
NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="
VARIANTS = {
    "default": "",
    "onednn dot": f"{NO_YNN} --xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_fusion_type=individual_dot",
    "onednn dot fusions": f"{NO_YNN} --xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_fusion_type=dot",
    "xnnpack dot": f"{NO_YNN} --xla_cpu_use_xnnpack=true "
    "--xla_cpu_experimental_xnn_fusion_type=dot",
    "ynnpack dot+eltwise": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise",
    "xla's own dot": NO_YNN,
    "512-bit vectors": "--xla_cpu_prefer_vector_width=512",
}


# The variants as per-compilation options (XLA's debug options by name).
ONE_PROCESS = {
    "default": {},  # jaxlib's (compile_inference does not pass our options yet)
    "onednn dot": {
        "xla_cpu_experimental_ynn_fusion_type": "",
        "xla_cpu_use_onednn": True,
        "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
    },
    "xla's own dot": {"xla_cpu_experimental_ynn_fusion_type": ""},
    "512-bit vectors": {"xla_cpu_prefer_vector_width": 512},
}


def one_process(args):
    """Every ONE_PROCESS variant compiled from one lowering, timed call by call in turn."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    from keras import ops

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    config = dict(PRESET_CONFIGS["videoprism_public_v1_base"])
    if args.layers:
        config.update(num_spatial_layers=args.layers, num_temporal_layers=1)
    keras.utils.set_random_seed(0)
    dtype = "bfloat16" if args.mode == "bfloat16" else "float32"
    model = vp.VideoPrismBackbone(**config, dtype=dtype)
    if args.mode == "int8":
        model.quantize("int8")
    clip = np.random.default_rng(0).uniform(size=(1, 16, args.size, args.size, 3))
    clip = clip.astype("float32")
    variables = list(model.variables)

    def stateless(values, x):  # as runtime.compile_inference
        with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
            return ops.cast(model(x), "float32")

    values = [v.value for v in variables]
    lowered = jax.jit(stateless).lower(values, clip)
    runs = {n: lowered.compile(compiler_options=o) for n, o in ONE_PROCESS.items()}
    outputs = {n: np.asarray(run(values, clip)) for n, run in runs.items()}  # warm-up
    times = {n: [] for n in runs}
    names = list(runs)
    for round_ in range(args.repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            np.asarray(runs[name](values, clip))
            times[name].append(time.perf_counter() - start)
    reference = outputs["default"]
    layers = f"{args.layers} spatial + 1 temporal layers" if args.layers else "base"
    print(f"{layers}, {args.mode}, 1 x 16 x {args.size}^2, one process, {args.repeats} rounds")
    print(f"{'variant':16s} {'median s':>9s} {'x default':>9s} {'ratio per round':>30s} "
          f"{'max rel diff':>13s}")  # fmt: skip
    base = times["default"]
    for name in names:
        ratios = [t / b for t, b in zip(times[name], base, strict=True)]
        diff = float(np.abs(outputs[name] - reference).max() / np.abs(reference).max())
        per_round = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{name:16s} {statistics.median(times[name]):9.2f} "
              f"{statistics.median(ratios):9.3f} {per_round:>30s} {diff:13.1e}")  # fmt: skip


def worker(args):
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS
    from videoprism_keras.runtime import compile_inference

    config = dict(PRESET_CONFIGS["videoprism_public_v1_base"])
    if args.layers:
        config.update(num_spatial_layers=args.layers, num_temporal_layers=1)
    keras.utils.set_random_seed(0)
    model = vp.VideoPrismBackbone(**config)
    clip = np.random.default_rng(0).uniform(size=(1, 16, args.size, args.size, 3))
    run = compile_inference(model, lambda x: model(x))
    features = run(clip.astype("float32"))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run(clip.astype("float32"))
        times.append(time.perf_counter() - start)
    np.save(args.out, features)
    print(json.dumps({"median_s": statistics.median(times)}))


def spawn(args, flags, out):
    command = [sys.executable, __file__, "--worker", "--out", str(out)]
    command += ["--repeats", str(args.repeats), "--size", str(args.size)]
    command += ["--layers", str(args.layers)]
    env = {**os.environ, "XLA_FLAGS": flags, "KERAS_BACKEND": "jax"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--layers", type=int, default=0, help="spatial layers (0: all 12)")
    parser.add_argument("--rounds", type=int, default=3, help="times each variant runs")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="these variants")
    parser.add_argument("--one-process", action="store_true", help="interleaved, one process")
    parser.add_argument("--mode", default="float32", choices=["float32", "bfloat16", "int8"],
                        help="--one-process: the model's precision")  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.one_process:
        return one_process(args)
    names = ["default", *(n for n in (args.only or VARIANTS) if n != "default")]
    ratios, seconds, diffs, errors = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for round_ in range(args.rounds):  # a loaded machine slows a whole round alike
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            rows = {n: spawn(args, VARIANTS[n], out / f"{names.index(n)}.npy") for n in order}
            if "error" in rows["default"]:
                raise SystemExit(f"the default failed: {rows['default']['error']}")
            reference = np.load(out / "0.npy")
            for name, row in rows.items():
                if "error" in row:
                    errors[name] = row["error"]
                    continue
                got = np.load(out / f"{names.index(name)}.npy")
                diffs[name] = float(np.abs(got - reference).max() / np.abs(reference).max())
                seconds.setdefault(name, []).append(row["median_s"])
                ratios.setdefault(name, []).append(row["median_s"] / rows["default"]["median_s"])
    layers = f"{args.layers} spatial + 1 temporal layers" if args.layers else "base"
    print(f"{layers}, 1 x 16 x {args.size}^2, median of {args.repeats} calls per process, "
          f"{args.rounds} rounds (each variant once per round, the order rotated)")  # fmt: skip
    print(
        f"{'variant':20s} {'s per round':>22s} {'x default':>9s} {'max rel diff':>13s}  XLA_FLAGS"
    )
    for name in names:
        if name in errors:
            print(f"{name:20s} failed: {errors[name]}")
            continue
        times = " ".join(f"{t:.2f}" for t in seconds[name])
        print(f"{name:20s} {times:>22s} {statistics.median(ratios[name]):9.3f} "
              f"{diffs[name]:13.1e}  {VARIANTS[name]}")  # fmt: skip


if __name__ == "__main__":
    main()
