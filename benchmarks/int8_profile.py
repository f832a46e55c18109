"""Why Keras int8 is slower than float32 on TensorFlow and PyTorch: one projection, op by op.

    .venv/bin/python benchmarks/int8_profile.py               # both backends, base shapes
    .venv/bin/python benchmarks/int8_profile.py --model       # + a 2-layer base-width forward
    .venv/bin/python benchmarks/int8_profile.py --backends torch --profile   # torch.profiler

One quantized projection at the base model's MLP shapes, (16 * 256, 768) x (768, 3072) with
the exact GELU, is timed whole and in the three steps of Keras' `Dense._int8_call`: the
activations' abs-max quantization (abs, max, divide, multiply, round, clip, cast to int8),
the int8 x int8 -> int32 matmul, and the dequantization (cast, divide by the two scales,
bias add). Against it: the float32 `Projection` (our fused GEMM) and a plain float32
`keras.layers.Dense`, and our int8 call (`Projection` with `kernels.int8_matmul`, oneDNN's
int8 GEMM), whose outputs equal Keras' int8 call's. Each backend runs in its own process,
its functions compiled as `runtime.compile_inference` compiles the model (tf.function;
PyTorch eager in inference mode); each figure is the median of `--repeats` calls after a
warm-up, the variants interleaved so that a loaded machine slows them alike.

`--model`: the base model cut to 2 spatial and 1 temporal layers (base widths, 16 x 288),
float32, Keras int8 and our int8 forward. `--profile`: PyTorch's own per-op table
(torch.profiler) of the Keras int8 projection, naming the aten kernels it runs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROWS, WIDTH, UNITS = 16 * 256, 768, 3072


def timed(functions, arguments, repeats):
    """{name: median seconds} of each function, the calls interleaved round by round."""
    for name, fn in functions.items():
        fn(*arguments[name])  # warm-up: tracing, allocation
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn(*arguments[name])
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def compiled(fn):
    """`fn` compiled as `runtime.compile_inference` compiles a forward pass."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        traced = tf.function(fn)
        return lambda *a: keras.ops.convert_to_numpy(traced(*a))
    if backend == "torch":
        import torch

        def run(*a):
            with torch.inference_mode():
                return keras.ops.convert_to_numpy(fn(*a))

        return run
    import jax

    jitted = jax.jit(fn)
    return lambda *a: np.asarray(jitted(*a))


def keras_int8(layer):
    """`layer`'s quantized call as Keras alone computes it (`Dense._int8_call`)."""
    import keras

    from videoprism_keras.model.kernels import activate

    return lambda x: activate(keras.layers.Dense.quantized_call(layer, x), layer.fused_activation)


def projection_worker(repeats):
    import keras
    from keras import ops

    from videoprism_keras.model.kernels import int8_matmul
    from videoprism_keras.model.projection import Projection

    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS // 256, 256, WIDTH)).astype("float32")
    float_layer = Projection(UNITS, activation="gelu")
    float_layer.build((None, 256, WIDTH))
    dense = keras.layers.Dense(UNITS, activation="gelu")  # Keras' gelu: the tanh one
    dense.build((None, 256, WIDTH))
    int8_layer = Projection(UNITS, activation="gelu")
    int8_layer.build((None, 256, WIDTH))
    int8_layer.set_weights(float_layer.get_weights())
    int8_layer.quantize("int8")
    kernel = ops.convert_to_tensor(int8_layer._kernel)
    q, scale = int8_layer.inputs_quantizer(ops.convert_to_tensor(x), axis=-1)
    q_np, scale_np = ops.convert_to_numpy(q), ops.convert_to_numpy(scale)
    product = ops.convert_to_numpy(ops.matmul(q, kernel))

    def dequantize(p, s):
        y = ops.divide(ops.cast(p, "float32"), ops.multiply(int8_layer.kernel_scale, s))
        return ops.add(y, int8_layer.bias)

    functions = {
        "float32 Projection (our fused GEMM)": compiled(float_layer),
        "float32 keras Dense": compiled(dense),
        "int8 Keras (Dense._int8_call)": compiled(keras_int8(int8_layer)),
        "  quantize activations": compiled(lambda v: int8_layer.inputs_quantizer(v, axis=-1)[0]),
        "  int8 matmul (ops.matmul)": compiled(lambda a: ops.matmul(a, kernel)),
        "  dequantize + bias": compiled(dequantize),
        "int8 ours (kernels.int8_matmul)": compiled(int8_layer),
        "  int8 matmul (kernels.int8_matmul)": compiled(
            lambda a: int8_matmul(ops.reshape(a, (ROWS, WIDTH)), kernel)
        ),
    }
    arguments = {name: (x,) for name in functions}
    arguments["  int8 matmul (ops.matmul)"] = (q_np,)
    arguments["  int8 matmul (kernels.int8_matmul)"] = (q_np,)
    arguments["  dequantize + bias"] = (product, scale_np)
    medians = timed(functions, arguments, repeats)
    ours = functions["int8 ours (kernels.int8_matmul)"](x)
    theirs = functions["int8 Keras (Dense._int8_call)"](x)
    return {"medians": medians, "max_abs_difference": float(np.abs(ours - theirs).max())}


def model_worker(repeats, frames, size):
    import keras

    import videoprism_keras as vp
    from videoprism_keras.model.projection import Projection
    from videoprism_keras.presets import PRESET_CONFIGS

    config = dict(PRESET_CONFIGS["videoprism_public_v1_base"])
    config.update(num_spatial_layers=2, num_temporal_layers=1, num_frames=frames)
    keras.utils.set_random_seed(0)
    exact = vp.VideoPrismBackbone(**config)
    quantized = vp.VideoPrismBackbone(**config)
    quantized.set_weights(exact.get_weights())
    quantized.quantize("int8")
    clip = np.random.default_rng(0).uniform(size=(1, frames, size, size, 3)).astype("float32")
    fast = Projection._int8_inference

    def keras_path(x):  # the same model with Keras' own int8 call in every projection
        Projection._int8_inference = lambda self, training: False
        try:
            return quantized(x)
        finally:
            Projection._int8_inference = fast

    functions = {
        "float32": compiled(exact),
        "int8 Keras": compiled(keras_path),
        "int8 ours": compiled(quantized),
    }
    medians = timed(functions, {name: (clip,) for name in functions}, repeats)
    ours, theirs, reference = (functions[n](clip) for n in ("int8 ours", "int8 Keras", "float32"))
    a, b = ours.reshape(-1, ours.shape[-1]), reference.reshape(-1, reference.shape[-1])
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return {
        "medians": medians,
        "max_abs_difference": float(np.abs(ours - theirs).max()),
        "min_cosine_to_float32": float(cosine.min()),
    }


def torch_profile():
    """torch.profiler's table of Keras' int8 projection and ours (PyTorch backend)."""
    import torch

    from videoprism_keras.model.projection import Projection

    x = np.random.default_rng(0).normal(size=(ROWS // 256, 256, WIDTH)).astype("float32")
    layer = Projection(UNITS, activation="gelu")
    layer.build((None, 256, WIDTH))
    layer.quantize("int8")
    for name, fn in (("Keras int8", keras_int8(layer)), ("ours int8", layer)):
        run = compiled(fn)
        run(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            run(x)
        print(f"\n{name}: torch.profiler, one call")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def spawn(backend, args, *flags):
    command = [sys.executable, __file__, "--worker", *flags, "--repeats", str(args.repeats)]
    command += ["--frames", str(args.frames), "--size", str(args.size)]
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(title, backend, result, reference_name):
    print(f"\n{title}, {backend}")
    if "error" in result:
        print(f"  failed: {result['error']}")
        return
    medians = result["medians"]
    reference = medians[reference_name]
    for name, seconds in medians.items():
        print(f"  {name:40s} {1e3 * seconds:9.1f} ms  {seconds / reference:6.2f}x {reference_name}")
    extras = {k: v for k, v in result.items() if k != "medians"}
    print("  " + ", ".join(f"{k} {v:.3g}" for k, v in extras.items()))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", action="store_true", help="also a 2-layer model forward")
    parser.add_argument("--profile", action="store_true", help="torch.profiler's op table")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.profile:
            return torch_profile()
        if args.model_worker:
            return print(json.dumps(model_worker(args.repeats, args.frames, args.size)))
        return print(json.dumps(projection_worker(args.repeats)))
    shape = f"({ROWS}, {WIDTH}) x ({WIDTH}, {UNITS}) + exact GELU"
    for backend in args.backends:
        first = "float32 Projection (our fused GEMM)"
        report(f"one projection {shape}", backend, spawn(backend, args), first)
        if args.model:
            title = f"2 spatial + 1 temporal base layers, 1 x {args.frames} x {args.size}^2"
            report(title, backend, spawn(backend, args, "--model-worker"), "float32")
    if args.profile:
        env = {**os.environ, "KERAS_BACKEND": "torch"}
        subprocess.run([sys.executable, __file__, "--worker", "--profile"], env=env)


if __name__ == "__main__":
    main()
