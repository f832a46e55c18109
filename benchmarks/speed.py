"""Forward-pass speed: ours on every backend against keras_hub and transformers, one run.

Every contender runs in its own fresh process (a Keras backend is chosen at import),
on the same random-weight base configuration, fp32, after a warm-up call, and
reports the median of its timed calls and its peak resident memory. The "x" columns
are speed-ups within this run: a peer's median time / the contender's (> 1: faster).
After the float32 table: batch scaling, our approximate bfloat16 mode (speed and error
against float32), file-to-embedding throughput and the text tower's.

    .venv/bin/python benchmarks/speed.py            # 1 x 16 x 288 x 288, 3 timed calls each
    .venv/bin/python benchmarks/speed.py --quick    # 1 x 4 x 144 x 144, for a fast check
    .venv/bin/python benchmarks/speed.py --ablation tensorflow   # what each choice buys
    .venv/bin/python benchmarks/speed.py --breakdown             # where TensorFlow's time goes
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MEDIA = (
    Path(os.environ.get("VIDEOPRISM_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared"))
    / "media"
)
BASE = dict(hidden=768, mlp=3072, heads=12, spatial=12, temporal=4, patch=18)
OURS = ["ours[jax]", "ours[torch]", "ours[tensorflow]"]
# transformers' model also under torch.compile: what a PyTorch user picks for speed
# (max-autotune only with --autotune: its GEMM search takes long on a CPU).
PEERS = ["keras_hub[jax]", "transformers[torch]", "transformers+compile[torch]"]
AUTOTUNE_PEER = "transformers+autotune[torch]"
# Each ablation undoes one choice of ours (or, marked *, drops exactness) and is timed
# against the default on one backend.
VARIANTS = {
    "default": "ours: GEMM+bias(+GELU) in one call, fused QKV, heads-first attention",
    "keras_predict": "model.predict instead of runtime.compile_inference",
    "separate_bias": "N-D matmul, then a bias add of its own (no GEMM+bias+GELU fusion)",
    "unfused_qkv": "three (D, D) q/k/v matmuls instead of one fused (D, 3D)",
    "seq_major_attention": "attention einsums on (B, S, heads, hd), not heads-first matmuls",
    "approx_gelu": "* tanh-approximated GELU instead of the exact erf one",
    "no_soft_cap": "* no tanh soft cap on the attention logits",
    "addmm": "PyTorch: MKL's addmm, then the activation, instead of one oneDNN call",
    "malloc_default": "glibc unmaps large freed blocks (VIDEOPRISM_KEEP_FREED_MEMORY=0)",
    "torch_compile": "PyTorch: torch.compile (inductor) of the forward pass, not eager",
}


def forward_flops(frames, size, batch=1, c=BASE):
    """Multiply-adds × 2 of the base video encoder (GEMMs and attention)."""
    n = (size // c["patch"]) ** 2
    d, m = c["hidden"], c["mlp"]
    per_token_layer = 2 * (4 * d * d + 2 * d * m)  # qkv + out projections, MLP
    spatial = frames * n * c["spatial"] * (per_token_layer + 4 * n * d)  # + QK^T and PV
    temporal = frames * n * c["temporal"] * (per_token_layer + 4 * frames * d)
    patches = frames * n * 2 * c["patch"] ** 2 * 3 * d
    return batch * (spatial + temporal + patches)


def cpu_model():
    with open("/proc/cpuinfo") as info:
        return next((line.split(":", 1)[1].strip() for line in info
                     if line.startswith("model name")), "unknown CPU")  # fmt: skip


# Each tier's instruction in benchmarks/fma_peak.c: the /proc/cpuinfo flag that says the CPU
# has it, and gcc's flag that lets the compiler emit it (-march=native would too, on a gcc
# that knows the CPU).
PEAK_FLAGS = {"bfloat16": ("avx512_bf16", "-mavx512bf16"), "int8": ("avx512_vnni", "-mavx512vnni")}


def cpu_flags():
    with open("/proc/cpuinfo") as info:
        line = next((line for line in info if line.startswith("flags")), ":")
    return set(line.split(":", 1)[1].split())


def fma_peaks():
    """benchmarks/fma_peak.c compiled for this CPU and run: {"float32": GFLOP/s, "bfloat16":
    GFLOP/s, "int8": GOP/s}, all cores; None for a tier the CPU lacks (or without gcc)."""
    source = Path(__file__).with_name("fma_peak.c")
    binary = Path(os.environ.get("TMPDIR", "/tmp")) / "videoprism_fma_peak"
    flags = cpu_flags()
    extra = [option for flag, option in PEAK_FLAGS.values() if flag in flags]
    peaks = dict.fromkeys(["float32", *PEAK_FLAGS])
    try:
        subprocess.run(["gcc", "-O3", "-march=native", *extra, "-fopenmp", str(source), "-o",
                        str(binary)], check=True, capture_output=True)  # fmt: skip
        out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return peaks
    for line in out.splitlines():  # "TIER peak, all cores: N UNIT" or "...: not supported (...)"
        tier, _, value = line.partition(" peak, all cores: ")
        if tier in peaks and value[:1].isdigit():
            peaks[tier] = float(value.split()[0])
    return peaks


def fma_peak_gflops():
    """The float32 FMA peak of all cores, GFLOP/s (None without gcc)."""
    return fma_peaks()["float32"]


def describe_peaks(peaks):
    """One line: each tier's peak, or why it is missing."""
    units = {"float32": "GFLOP/s", "bfloat16": "GFLOP/s", "int8": "GOP/s"}
    return ", ".join(
        f"{tier} {f'{value:.0f} {units[tier]}' if value else 'unknown'}"
        for tier, value in peaks.items()
    )


def gemm_gflops(n=2048, repeats=5):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


# ------------------------------------------------------------------ workers
def build(name, frames, size, variant="default"):
    """A callable on a (B, T, H, W, 3) float32 array, for one contender."""
    impl, backend = name.split("[")[0], name.split("[")[1].rstrip("]")
    os.environ["KERAS_BACKEND"] = backend
    if impl == "ours":
        import videoprism_keras as vp
        from videoprism_keras.presets import PRESET_CONFIGS
        from videoprism_keras.runtime import compile_inference, keep_freed_memory

        config = dict(PRESET_CONFIGS["videoprism_public_v1_base"])
        if variant == "no_soft_cap":
            config["attention_logit_soft_cap"] = None
        patch_variant(variant)
        model = vp.VideoPrismBackbone(**config)
        if variant == "keras_predict":
            return lambda x: model.predict(x, verbose=0)
        # Our inference entry point (what embedding, the CLI and the apps use): the forward
        # pass compiled by jax.jit / tf.function, or run in torch inference mode, with
        # the allocator setting that `runtime.Encoder` applies.
        keep_freed_memory()
        if variant == "torch_compile":
            import torch

            compiled = torch.compile(lambda x: model(x))  # the warm-up call compiles

            def run(x):
                with torch.inference_mode():
                    return compiled(torch.from_numpy(x)).numpy()

            return run
        return compile_inference(model, lambda x: model(x))
    if impl == "keras_hub":
        import keras_hub

        model = keras_hub.models.VideoPrismBackbone(
            num_frames=frames, patch_size=18, hidden_dim=768, intermediate_dim=3072,
            num_heads=12, num_spatial_layers=12, num_temporal_layers=4, num_auxiliary_layers=0,
            attention_logit_soft_cap=50.0, image_shape=(size, size, 3),
        )  # fmt: skip
        return lambda x: model.predict(x, verbose=0)
    if impl.startswith("transformers"):
        import torch
        from transformers import VideoPrismVisionConfig, VideoPrismVisionModel

        config = VideoPrismVisionConfig(num_frames=frames, image_size=size)
        model = VideoPrismVisionModel(config).eval()
        forward = lambda pixels: model(pixel_values_videos=pixels).last_hidden_state  # noqa: E731
        if impl != "transformers":  # inductor; the warm-up call compiles
            mode = "max-autotune" if impl.endswith("autotune") else "default"
            forward = torch.compile(forward, mode=mode)

        def run(x):
            with torch.inference_mode():
                pixels = torch.from_numpy(x).permute(0, 1, 4, 2, 3)  # (B, T, C, H, W)
                return forward(pixels).numpy()

        return run
    raise ValueError(name)


def patch_variant(variant):
    """Swaps the piece of our model that `variant` ablates; the rest stays as shipped."""
    from keras import ops

    from videoprism_keras.model import kernels
    from videoprism_keras.model import projection as proj
    from videoprism_keras.model import transformer as tr

    if variant == "addmm":
        kernels._onednn_linear = lambda x, kernel: False
    if variant == "malloc_default":
        os.environ["VIDEOPRISM_KEEP_FREED_MEMORY"] = "0"
    linear, attention_call = proj.linear, tr.SelfAttention.call

    def activate(y, activation, approximate=False):
        if activation == "gelu":
            return ops.gelu(y, approximate=approximate)
        return ops.relu(y) if activation == "relu" else y

    def separate_bias(x, kernel, bias, activation=None):  # N-D matmul, then a bias pass
        return activate(ops.matmul(x, kernel) + bias, activation)

    def approx_gelu(x, kernel, bias, activation=None):
        return activate(linear(x, kernel, bias), activation, approximate=True)

    def unfused_qkv(self, x, attention_mask=None, training=None):
        dim, heads = x.shape[-1], self.num_heads
        q, k, v = (
            tr.split_heads(linear(x, self.qkv_proj.kernel[:, i * dim : (i + 1) * dim],
                                  self.qkv_proj.bias[i * dim : (i + 1) * dim]), 1, heads)[0]
            for i in range(3)
        )  # fmt: skip
        q = q * ops.cast((dim // heads) ** -0.5, q.dtype)
        out = tr.attend(
            q, k, v, attention_mask, self.attention_logit_soft_cap, self.dropout, training
        )
        return self.out_proj(tr.merge_heads(out))

    def seq_major_attention(self, x, attention_mask=None, training=None):  # no mask: video only
        seq, dim, heads = ops.shape(x)[1], x.shape[-1], self.num_heads
        qkv = ops.reshape(self.qkv_proj(x), (-1, seq, 3, heads, dim // heads))
        q, k, v = qkv[:, :, 0] * (dim // heads) ** -0.5, qkv[:, :, 1], qkv[:, :, 2]
        logits = ops.einsum("bqhd,bkhd->bhqk", q, k)
        logits = self.attention_logit_soft_cap * ops.tanh(logits / self.attention_logit_soft_cap)
        out = ops.einsum("bhqk,bkhd->bqhd", ops.softmax(logits, axis=-1), v)
        return self.out_proj(ops.reshape(out, (-1, seq, dim)))

    proj.linear = {"separate_bias": separate_bias, "approx_gelu": approx_gelu}.get(variant, linear)
    calls = {"unfused_qkv": unfused_qkv, "seq_major_attention": seq_major_attention}
    tr.SelfAttention.call = calls.get(variant, attention_call)


def fast_mode_worker(frames, size, dtype, repeats):
    """Ours in an approximate compute dtype: its median time, and its error against the
    float32 path on the same weights and clip (relative L2 error of the token features,
    lowest cosine similarity between a token's two feature vectors)."""
    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS
    from videoprism_keras.runtime import compile_inference, keep_freed_memory

    config = PRESET_CONFIGS["videoprism_public_v1_base"]
    exact = vp.VideoPrismBackbone(**config)
    fast = vp.VideoPrismBackbone(**config, dtype=dtype)
    fast.set_weights(exact.get_weights())
    video = random_clip(1, frames, size)
    keep_freed_memory()  # as `runtime.Encoder` does
    run = compile_inference(fast, lambda x: fast(x))
    approx = run(video)  # also the warm-up
    median = statistics.median(timed(run, video, repeats))
    reference = compile_inference(exact, lambda x: exact(x))(video)
    a, b = approx.reshape(-1, approx.shape[-1]), reference.reshape(-1, reference.shape[-1])
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    error = np.linalg.norm(a - b) / np.linalg.norm(b)
    return {"median_s": median, "rel_error": float(error), "min_cosine": float(cosine.min())}


def random_clip(batch, frames, size):
    """The same uniform [0, 1) clip for every contender."""
    return np.random.default_rng(0).uniform(size=(batch, frames, size, size, 3)).astype("float32")


def timed(run, video, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(video)
        times.append(time.perf_counter() - start)
    return times


def text_worker(batch, length, repeats):
    """Texts per second through the LvT-base text tower (ours, current backend)."""
    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS
    from videoprism_keras.runtime import Encoder

    encoder = Encoder(vp.VideoPrismBackbone(**PRESET_CONFIGS["videoprism_lvt_public_v1_base"]))
    rng = np.random.default_rng(0)
    rates = {}
    for name, real in (("full", length), ("prompt", 8)):  # 64 real tokens; a short prompt
        ids = rng.integers(1, 32000, size=(batch, length)).astype("int32")
        mask = (np.arange(length) < real).astype("int32")[None].repeat(batch, 0)
        encoder.text(ids, mask)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder.text(ids, mask)
            times.append(time.perf_counter() - start)
        rates[name] = batch / statistics.median(times)
    return rates


def e2e_worker(frames, size, clips):
    """Video files → embeddings per second, decoding overlapped with the model (base)."""
    import videoprism_keras as vp
    from videoprism_keras.apps import embed_videos
    from videoprism_keras.presets import PRESET_CONFIGS
    from videoprism_keras.runtime import Encoder

    model = vp.VideoPrismBackbone(**PRESET_CONFIGS["videoprism_public_v1_base"])
    encoder = Encoder(model)
    videos = [str(MEDIA / "water_bottle_drumming.mp4")] * clips
    options = dict(num_frames=frames, size=(size, size), batch_size=1, progress=False)
    embed_videos(model, videos[:1], encoder=encoder, **options)  # warm-up
    start = time.perf_counter()
    embed_videos(model, videos, encoder=encoder, **options)
    return {"clips_per_s": clips / (time.perf_counter() - start)}


def worker(args):
    if args.text:
        print(json.dumps(text_worker(args.batch, 64, args.repeats)))
        return
    if args.e2e:
        print(json.dumps(e2e_worker(args.frames, args.size, args.repeats)))
        return
    if args.dtype != "float32":
        print(json.dumps(fast_mode_worker(args.frames, args.size, args.dtype, args.repeats)))
        return
    video = random_clip(args.batch, args.frames, args.size)
    run = build(args.worker, args.frames, args.size, args.variant)
    run(video)  # warm-up: compilation, allocation
    times = timed(run, video, args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_s": statistics.median(times), "times": times, "peak_mb": peak}))


def run_worker(name, args, batch=1, flags=(), variant="default", dtype="float32", repeats=None,
               env=None):  # fmt: skip
    """One contender's worker in a fresh process (its own Keras backend)."""
    cmd = [sys.executable, __file__, "--worker", name, "--frames", str(args.frames)]
    cmd += ["--size", str(args.size), "--repeats", str(repeats or args.repeats)]
    cmd += ["--batch", str(batch), "--variant", variant, "--dtype", dtype, *flags]
    env = {**os.environ, **(env or {}), "KERAS_BACKEND": name.split("[")[1].rstrip("]")}
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def spawn(name, args, batch=None, text=False, e2e=False, variant="default", dtype="float32"):
    flags = (["--text"] if text else []) + (["--e2e"] if e2e else [])
    out = run_worker(name, args, batch or 1, flags, variant, dtype)
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
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)  # workers
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes for the scaling table")
    parser.add_argument("--only", default=None, help="comma-separated contenders")
    autotune = f"also {AUTOTUNE_PEER} (torch.compile max-autotune: slow to compile)"
    parser.add_argument("--autotune", action="store_true", help=autotune)
    parser.add_argument("--ablation", metavar="BACKEND", help="time VARIANTS on one backend")
    parser.add_argument("--breakdown", action="store_true", help="TensorFlow's time per op")
    parser.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--text", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--e2e", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.quick:
        args.frames, args.size, args.batches = 4, 144, "1,2"
    contenders = args.only.split(",") if args.only else OURS + PEERS
    if args.autotune:
        contenders.append(AUTOTUNE_PEER)
    flops = forward_flops(args.frames, args.size)
    gemm, peaks = gemm_gflops(), fma_peaks()
    peak = peaks["float32"]
    print(f"{cpu_model()}, {os.cpu_count()} CPUs: peaks {describe_peaks(peaks)} "
          f"(benchmarks/fma_peak.c); numpy GEMM {gemm:.0f} GFLOP/s (2048^3)")  # fmt: skip
    print(f"clip 1 x {args.frames} x {args.size} x {args.size} x 3, fp32, random weights, "
          f"{flops / 1e12:.3f} TFLOP")  # fmt: skip
    if args.ablation:
        return ablation(f"ours[{args.ablation}]", args)
    if args.breakdown:
        return breakdown(args)
    results = {name: spawn(name, args) for name in contenders}
    peers = {p: results[p]["median_s"] for p in [*PEERS, AUTOTUNE_PEER]
             if "median_s" in results.get(p, {})}  # fmt: skip
    columns = [*(f"x {p.split('[')[0]}" for p in peers), "x best peer"] if peers else []
    header = ["contender", "median s", "GFLOP/s", "% peak", "peak MB", *columns]
    print("\n{:28s} {:>9s} {:>8s} {:>6s} {:>8s}".format(*header[:5]),
          *(f"{c:>22s}" for c in columns))  # fmt: skip
    for name, r in results.items():
        if "error" in r:
            print(f"{name:28s} failed: {r['error']}")
            continue
        speedups = [*peers.values(), min(peers.values())] if peers else []
        rate = flops / r["median_s"] / 1e9
        share = f"{100 * rate / peak:5.0f}%" if peak else "     -"
        print(f"{name:28s} {r['median_s']:9.2f} {rate:8.0f} {share} {r['peak_mb']:8.0f}",
              *(f"{t / r['median_s']:21.2f}x" for t in speedups))  # fmt: skip
    ours = {n: r["median_s"] for n, r in results.items() if n in OURS and "median_s" in r}
    if not ours:
        return
    fastest = min(ours, key=ours.get)
    print(f"\nbatch scaling, {fastest}: seconds per clip, peak MB, MB per extra clip")
    first = None
    for batch in map(int, args.batches.split(",")):
        r = spawn(fastest, args, batch=batch)
        if "error" in r:
            print(f"  B={batch}: failed: {r['error']}")
            continue
        first = first or (batch, r["peak_mb"])
        extra = (r["peak_mb"] - first[1]) / (batch - first[0]) if batch > first[0] else None
        per_clip = f"{extra:7.0f}" if extra is not None else "      -"
        print(
            f"  B={batch}: {r['median_s'] / batch:6.2f} s/clip  {r['peak_mb']:7.0f} MB {per_clip}"
        )
    print('\napproximate fast mode (explicit: dtype="bfloat16"), error against float32 on the '
          "same weights")  # fmt: skip
    best_peer = min(peers.values()) if peers else None
    for name in ours:
        r = spawn(name, args, dtype="bfloat16")
        if "error" in r:
            print(f"  {name:20s} failed: {r['error']}")
            continue
        speedup = f"{best_peer / r['median_s']:5.2f}x best peer  " if best_peer else ""
        exact = f"{ours[name] / r['median_s']:5.2f}x float32  "
        error = f"rel. error {r['rel_error']:.4f}, min cosine {r['min_cosine']:.5f}"
        print(f"  {name:20s} {r['median_s']:6.2f} s  {exact}{speedup}{error}")
    r = spawn(fastest, args, e2e=True)
    rate = f"{r['clips_per_s']:.3f} clips/s" if "clips_per_s" in r else f"failed: {r['error']}"
    print(f"\nfile -> embedding, {fastest}, decoding overlapped: {rate}")
    texts = 16 if args.quick else 64
    print(f"\ntext tower (LvT base, {texts} texts padded to 64 tokens): texts/s")
    print(f"  {'':20s} {'64 real':>8s} {'8 real':>8s}")
    for name in OURS:
        r = spawn(name, args, batch=texts, text=True)
        rates = f"{r['full']:8.0f} {r['prompt']:8.0f}" if "full" in r else f"failed: {r['error']}"
        print(f"  {name:20s} {rates}")


def breakdown(args):
    """Our TensorFlow forward pass per oneDNN primitive, from oneDNN's own timings.

    TensorFlow runs every GEMM, attention matmul, softmax and layout change through
    oneDNN; ONEDNN_VERBOSE=1 prints each call's milliseconds. A warm-up and a timed
    call run the same primitives in the same order, so the second half of the trace
    is the timed call's. What is not in oneDNN (LayerNorm, the soft cap's tanh,
    residual adds, TensorFlow itself) is the rest.
    """
    name = "ours[tensorflow]"
    out = run_worker(name, args, repeats=1, env={"ONEDNN_VERBOSE": "1"})
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        print(f"{name} failed: {out.stderr.strip()[-500:]}")
        return
    total = json.loads(lines[-1])["median_s"] * 1e3
    ms, calls = {}, {}
    execs = [f for f in (line.split(",") for line in lines) if len(f) > 5 and f[3] == "exec"]
    for fields in execs[len(execs) // 2 :]:  # onednn_verbose,v1,primitive,exec,...
        key = f"{fields[5]} {fields[-2]}"  # kind and problem shape
        ms[key] = ms.get(key, 0.0) + float(fields[-1])
        calls[key] = calls.get(key, 0) + 1
    print(f"\nbreakdown, {name}: forward pass {total:.0f} ms (the timed call)")
    print(f"  {'oneDNN primitive':44s} {'calls':>5s} {'ms':>7s} {'share':>6s} {'GFLOP/s':>8s}")
    for key in sorted(ms, key=ms.get, reverse=True)[:12]:
        flops = gemm_shape_flops(key) * calls[key]
        rate = f"{flops / ms[key] / 1e6:8.0f}" if flops else ""
        print(f"  {key:44s} {calls[key]:5d} {ms[key]:7.0f} {ms[key] / total:6.1%} {rate}")
    gemms = [k for k in ms if gemm_shape_flops(k)]
    gemm, flops = sum(ms[k] for k in gemms), sum(gemm_shape_flops(k) * calls[k] for k in gemms)
    rest = total - sum(ms.values())
    print(f"  all GEMMs (inner products, attention matmuls): {gemm:.0f} ms, {gemm / total:.1%}, "
          f"{flops / gemm / 1e6:.0f} GFLOP/s")  # fmt: skip
    print(f"  outside oneDNN (LayerNorm, tanh, adds, TF): {rest:.0f} ms, {rest / total:.1%}")


def gemm_shape_flops(key):
    """FLOPs of one oneDNN GEMM call from its verbose shape, 0 for other primitives:
    `inner_product mb{M}ic{K}oc{N}` or `matmul {batch}x{M}x{K}:{batch}x{K}x{N}`."""
    kind, shape = key.split(" ", 1)
    if kind == "inner_product":
        m, k, n = (int(v) for v in shape[2:].replace("ic", " ").replace("oc", " ").split())
        return 2 * m * k * n
    if kind == "matmul":
        a, b = (list(map(int, side.split("x"))) for side in shape.split(":"))
        return 2 * int(np.prod(a)) * b[-1]
    return 0


def ablation(name, args):
    print(f"\nablation, {name} (* = not the official numerics)")
    default = None
    for variant, what in VARIANTS.items():
        r = spawn(name, args, variant=variant)
        if "error" in r:
            print(f"  {variant:20s} failed: {r['error']}")
            if default is None:
                return  # no baseline to compare with
            continue
        default = default or r["median_s"]
        print(f"  {variant:20s} {r['median_s']:6.2f} s  {r['median_s'] / default:5.2f}x  {what}")


if __name__ == "__main__":
    main()
