"""Forward-pass speed: ours on every backend against keras_hub and transformers, one run.

Every contender runs in its own fresh process (a Keras backend is chosen at import),
on the same random-weight base configuration, fp32, after a warm-up call, and
reports the median of its timed calls and its peak resident memory. Ratios are
ours / theirs in this run only.

    .venv/bin/python benchmarks/speed.py            # 1 x 16 x 288 x 288, 3 timed calls each
    .venv/bin/python benchmarks/speed.py --quick    # 1 x 4 x 144 x 144, for a fast check
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

BASE = dict(hidden=768, mlp=3072, heads=12, spatial=12, temporal=4, patch=18)
OURS = ["ours[jax]", "ours[torch]", "ours[tensorflow]"]
PEERS = ["keras_hub[jax]", "transformers[torch]"]


def forward_flops(frames, size, batch=1, c=BASE):
    """Multiply-adds × 2 of the base video encoder (GEMMs and attention)."""
    n = (size // c["patch"]) ** 2
    d, m = c["hidden"], c["mlp"]
    per_token_layer = 2 * (4 * d * d + 2 * d * m)  # qkv + out projections, MLP
    spatial = frames * n * c["spatial"] * (per_token_layer + 4 * n * d)  # + QK^T and PV
    temporal = frames * n * c["temporal"] * (per_token_layer + 4 * frames * d)
    patches = frames * n * 2 * c["patch"] ** 2 * 3 * d
    return batch * (spatial + temporal + patches)


def gemm_gflops(n=2048, repeats=5):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


# ------------------------------------------------------------------ workers
def build(name, frames, size):
    """(callable on a (B, T, H, W, 3) float32 array, description) for one contender."""
    impl, backend = name.split("[")[0], name.split("[")[1].rstrip("]")
    os.environ["KERAS_BACKEND"] = backend
    if impl == "ours":
        import videoprism_keras as vp
        from videoprism_keras.presets import PRESET_CONFIGS

        model = vp.VideoPrismBackbone(**PRESET_CONFIGS["videoprism_public_v1_base"])
        return lambda x: model.predict(x, verbose=0)
    if impl == "keras_hub":
        import keras_hub

        model = keras_hub.models.VideoPrismBackbone(
            num_frames=frames, patch_size=18, hidden_dim=768, intermediate_dim=3072,
            num_heads=12, num_spatial_layers=12, num_temporal_layers=4, num_auxiliary_layers=0,
            attention_logit_soft_cap=50.0, image_shape=(size, size, 3),
        )  # fmt: skip
        return lambda x: model.predict(x, verbose=0)
    if impl == "transformers":
        import torch
        from transformers import VideoPrismVisionConfig, VideoPrismVisionModel

        config = VideoPrismVisionConfig(num_frames=frames, image_size=size)
        model = VideoPrismVisionModel(config).eval()

        def run(x):
            with torch.inference_mode():
                pixels = torch.from_numpy(x).permute(0, 1, 4, 2, 3)  # (B, T, C, H, W)
                return model(pixel_values_videos=pixels).last_hidden_state.numpy()

        return run
    raise ValueError(name)


def text_worker(batch, length, repeats):
    """Texts per second through the LvT-base text tower (ours, current backend)."""
    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    model = vp.VideoPrismBackbone(**PRESET_CONFIGS["videoprism_lvt_public_v1_base"])
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 32000, size=(batch, length)).astype("int32")
    mask = np.ones_like(ids)
    inputs = {"token_ids": ids, "padding_mask": mask}
    model.predict(inputs, verbose=0, batch_size=batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(inputs, verbose=0, batch_size=batch)
        times.append(time.perf_counter() - start)
    return {"texts_per_s": batch / statistics.median(times)}


def worker(args):
    if args.text:
        print(json.dumps(text_worker(args.batch, 64, args.repeats)))
        return
    video = np.random.default_rng(0).uniform(
        size=(args.batch, args.frames, args.size, args.size, 3)
    )
    video = video.astype("float32")
    run = build(args.worker, args.frames, args.size)
    run(video)  # warm-up: compilation, allocation
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run(video)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_s": statistics.median(times), "times": times, "peak_mb": peak}))


def spawn(name, args, batch=None, text=False):
    cmd = [sys.executable, __file__, "--worker", name, "--frames", str(args.frames)]
    cmd += ["--size", str(args.size), "--repeats", str(args.repeats)]
    cmd += ["--batch", str(batch or 1)] + (["--text"] if text else [])
    env = {**os.environ, "KERAS_BACKEND": name.split("[")[1].rstrip("]")}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 x 4 x 144 x 144 clips")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes for the scaling table")
    parser.add_argument("--only", default=None, help="comma-separated contenders")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.frames, args.size, args.batches = 4, 144, "1,2"
    contenders = args.only.split(",") if args.only else OURS + PEERS
    flops = forward_flops(args.frames, args.size)
    gemm = gemm_gflops()
    print(f"clip 1 x {args.frames} x {args.size} x {args.size} x 3, fp32, random weights, "
          f"{flops / 1e12:.3f} TFLOP; machine GEMM {gemm:.0f} GFLOP/s (numpy, 2048^3)")  # fmt: skip
    results = {name: spawn(name, args) for name in contenders}
    peers = [results[p]["median_s"] for p in PEERS if "median_s" in results.get(p, {})]
    best_peer = min(peers) if peers else None
    header = ("contender", "median s", "GFLOP/s", "peak MB", "vs best peer")
    print("\n{:22s} {:>9s} {:>8s} {:>8s} {:>13s}".format(*header))
    for name, r in results.items():
        if "error" in r:
            print(f"{name:22s} failed: {r['error']}")
            continue
        speedup = f"{best_peer / r['median_s']:.2f}x" if best_peer else "-"
        rate = flops / r["median_s"] / 1e9
        print(f"{name:22s} {r['median_s']:9.2f} {rate:8.0f} {r['peak_mb']:8.0f} {speedup:>13s}")
    ours = {n: r["median_s"] for n, r in results.items() if n in OURS and "median_s" in r}
    if not ours:
        return
    fastest = min(ours, key=ours.get)
    print(f"\nbatch scaling, {fastest}: seconds per clip, peak MB")
    for batch in map(int, args.batches.split(",")):
        r = spawn(fastest, args, batch=batch)
        if "error" in r:
            print(f"  B={batch}: failed: {r['error']}")
        else:
            print(f"  B={batch}: {r['median_s'] / batch:6.2f} s/clip  {r['peak_mb']:7.0f} MB")
    print("\ntext tower (LvT base, 64 texts x 64 tokens)")
    for name in OURS:
        r = spawn(name, args, batch=16 if args.quick else 64, text=True)
        print(
            f"  {name:20s} "
            + (
                f"{r['texts_per_s']:7.0f} texts/s"
                if "texts_per_s" in r
                else f"failed: {r['error']}"
            )
        )


if __name__ == "__main__":
    main()
