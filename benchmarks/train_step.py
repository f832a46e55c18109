"""Training-step speed and peak memory: ours per backend (full, full + remat, LoRA)
against transformers' VideoPrism vision model (PyTorch eager and torch.compile).

One step = forward + backward + SGD update of the base video encoder (random
weights, float32) on a mean-of-features loss, at batch × frames × size². Every row
runs in its own fresh process (a Keras backend is chosen at import; peak resident
memory is per process), warms up once (compilation), then times `--steps` steps and
reports the median. On a GPU the peak is the accelerator's (JAX memory stats,
torch.cuda.max_memory_allocated); on the CPU, the process's peak RSS.

    .venv/bin/python benchmarks/train_step.py                 # 2 x 16 x 288², 3 steps
    .venv/bin/python benchmarks/train_step.py --quick         # 1 x 4 x 144², a fast check
    .venv/bin/python benchmarks/train_step.py --rows "ours[jax] full" "transformers eager"
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROWS = [
    "ours[jax] full", "ours[jax] remat", "ours[jax] lora",
    "ours[torch] full", "ours[torch] remat", "ours[torch] lora",
    "ours[tensorflow] full", "ours[tensorflow] remat", "ours[tensorflow] lora",
    "transformers eager", "transformers compile",
]  # fmt: skip
BASE = dict(
    patch_size=18, hidden_dim=768, intermediate_dim=3072, num_heads=12, num_spatial_layers=12,
    num_temporal_layers=4, num_auxiliary_layers=0, attention_logit_soft_cap=50.0,
)  # fmt: skip
LORA_RANK = 8


def ours(backend, mode, batch, frames, size):
    os.environ["KERAS_BACKEND"] = backend
    import keras

    from videoprism_keras import VideoPrismBackbone

    model = VideoPrismBackbone(num_frames=frames, image_shape=(size, size, 3),
                               remat=mode == "remat", **BASE)  # fmt: skip
    if mode == "lora":
        model.enable_lora(LORA_RANK)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    pixels = np.random.default_rng(0).uniform(size=(batch, frames, size, size, 3))
    pixels = pixels.astype("float32")
    optimizer = keras.optimizers.SGD(1e-4)
    optimizer.build(model.trainable_variables)

    if backend == "jax":
        import jax

        def loss_fn(trainable, frozen, x):
            out, _ = model.stateless_call(trainable, frozen, x, training=True)
            return keras.ops.mean(out)

        @jax.jit
        def step(trainable, frozen, opt_vars, x):
            grads = jax.grad(loss_fn)(trainable, frozen, x)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return trainable, opt_vars

        state = [
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        ]

        def run():
            state[0], state[2] = step(state[0], state[1], state[2], pixels)
            jax.block_until_ready(state[0])

    elif backend == "torch":
        import torch

        x = torch.as_tensor(pixels)

        def run():
            loss = keras.ops.mean(model(x, training=True))
            model.zero_grad()
            loss.backward()
            optimizer.apply([v.value.grad for v in model.trainable_variables],
                            model.trainable_variables)  # fmt: skip

    else:
        import tensorflow as tf

        @tf.function(jit_compile=False)
        def step(x):
            with tf.GradientTape() as tape:
                loss = keras.ops.mean(model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)

        x = tf.constant(pixels)

        def run():
            step(x)

    return run, trainable


def transformers_row(mode, batch, frames, size):
    import torch
    from transformers import VideoPrismVisionConfig, VideoPrismVisionModel

    config = VideoPrismVisionConfig(num_frames=frames, image_size=size)
    model = VideoPrismVisionModel(config).train()
    if mode == "compile":
        model = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    pixels = torch.rand(batch, frames, 3, size, size)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def run():
        optimizer.zero_grad()
        model(pixel_values_videos=pixels).last_hidden_state.mean().backward()
        optimizer.step()

    return run, trainable


def child(row, batch, frames, size, steps):
    impl, mode = row.split()
    if impl == "transformers":
        run, trainable = transformers_row(mode, batch, frames, size)
    else:
        run, trainable = ours(impl[5:-1], mode, batch, frames, size)
    start = time.perf_counter()
    run()  # warm-up: compilation
    warmup = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    device_peak = _device_peak(impl)
    return {"row": row, "median_s": statistics.median(times), "warmup_s": warmup,
            "peak_gib": device_peak or peak, "peak_kind": "device" if device_peak else "rss",
            "trainable": trainable}  # fmt: skip


def _device_peak(impl):
    try:
        if "jax" in impl:
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            return stats.get("peak_bytes_in_use", 0) / 2**30 or None
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**30
    except Exception:
        return None
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 x 4 x 144², 2 steps")
    parser.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per row")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.frames, args.size, args.steps = 1, 4, 144, 2
    shape = (args.batch, args.frames, args.size, args.steps)
    if args.child:
        print(json.dumps(child(args.child, *shape)))
        return
    print(f"train step, base video encoder, {args.batch} x {args.frames} x {args.size}², "
          f"median of {args.steps} steps")  # fmt: skip
    print(f"{'row':24} {'step s':>8} {'warm-up s':>10} {'peak GiB':>9} {'trainable':>12}")
    results = {}
    for row in args.rows:
        command = [sys.executable, __file__, "--child", row, "--batch", str(args.batch),
                   "--frames", str(args.frames), "--size", str(args.size),
                   "--steps", str(args.steps)]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{row:24} timed out after {args.timeout} s")
            continue
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["?"])[-1][:80]
            print(f"{row:24} failed (exit {done.returncode}): {last}")
            continue
        r = results[row] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{row:24} {r['median_s']:8.3f} {r['warmup_s']:10.1f} "
              f"{r['peak_gib']:8.2f}{'*' if r['peak_kind'] == 'rss' else ' '} "
              f"{r['trainable']:12,}", flush=True)  # fmt: skip
    print("* peak resident memory of the process (CPU); otherwise the accelerator's peak")
    fastest_ours = min((r["median_s"] for k, r in results.items() if k.endswith("full")),
                       default=None)  # fmt: skip
    peers = [r["median_s"] for k, r in results.items() if k.startswith("transformers")]
    if fastest_ours and peers:
        print(f"fastest full fine-tuning row vs the faster transformers row: "
              f"{min(peers) / fastest_ours:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
