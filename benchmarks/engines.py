"""ONNX Runtime and OpenVINO against ours, per accuracy tier: seconds per clip and error.

    .venv/bin/python benchmarks/engines.py                       # the full table (~11 min)
    .venv/bin/python benchmarks/engines.py --repeats 1 --only ort-f32 ov-int8   # a check
    .venv/bin/python benchmarks/engines.py --skip ours-torch-int8 --cap 300

The VideoPrism-B video-only model with the random weights of seed 0 (as
benchmarks/quantization.py's `random_base`), one 16 x 288 x 288 clip (batch 1). It is
exported once to ONNX by our own `export(format="onnx")` from the JAX backend and
quantized once (ONNX Runtime's dynamic int8; OpenVINO's NNCF int8 in transformer mode,
calibrated on real clips), all cached under `--cache`. Every path then runs in its own
process (this script with a hidden flag) pinned to `--threads` cores: a warm-up call,
then the median of `--repeats` timed calls, within `--cap` seconds per path (a path that
cannot finish its calls in time is marked "capped" with what it did finish).

Besides: transformers' VideoPrism vision model under torch.compile on the same weights
(`hf-compile`), and our own engine path, `runtime.Encoder(model, engine, precision)`
(`encoder-ENGINE-PRECISION`, its artefact built once in a preparing process).

Tiers: exact (lowest token cosine >= 0.99999 against our JAX float32 output on the
same clip), bf16 (>= 0.9999), int8 (>= 0.999). Error: the lowest cosine of a token's
feature vector, and the cosine of the mean-pooled features (the video-only model's
pooled embedding), against our float32 features.

The clips are shared/media/water_bottle_drumming.mp4 through the official colab's
preprocessing: the timed clip is its official 16-frame sampling; the calibration clips
(NNCF only) interleave 16 * calibration frames sampled uniformly, each spanning the video.
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
from speed import cpu_model, describe_peaks, fma_peaks, forward_flops

SHARED = Path(
    os.environ.get("VIDEOPRISM_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
)
CLIP = SHARED / "media" / "water_bottle_drumming.mp4"
PRESET = "videoprism_public_v1_base"
SEED = 0
# Lowest token cosine against float32 that a tier accepts.
TIERS = {"exact": 0.99999, "bf16": 0.9999, "int8": 0.999}
# name: (tier, what the table calls it). Ours are "ours-BACKEND-MODE"; the order is the
# run order (ours-jax-f32 first: its output is every row's reference).
PATHS = {
    "ours-jax-f32": ("exact", "ours, JAX float32 (the default backend)"),
    "ours-tensorflow-f32": ("exact", "ours, TensorFlow float32"),
    "ours-torch-f32": ("exact", "ours, PyTorch float32"),
    "ort-f32": ("exact", "ONNX Runtime float32"),
    "ov-f32": ("exact", "OpenVINO, f32 hint"),
    "ours-jax-bf16": ("bf16", "ours, JAX bfloat16"),
    "ours-tensorflow-bf16": ("bf16", "ours, TensorFlow bfloat16"),
    "ours-torch-bf16": ("bf16", "ours, PyTorch bfloat16"),
    "ov-default": ("bf16", "OpenVINO, default hint"),
    "ours-jax-int8": ("int8", 'ours, JAX quantize("int8")'),
    "ours-tensorflow-int8": ("int8", 'ours, TensorFlow quantize("int8")'),
    "ort-int8": ("int8", "ONNX Runtime dynamic int8"),
    "ov-int8": ("int8", "OpenVINO after NNCF int8 (transformer mode)"),
    "ours-torch-int8": ("int8", 'ours, PyTorch quantize("int8")'),
    "hf-compile": ("exact", "transformers + torch.compile (inductor), our weights"),
    # Our integrated engine path, as a user gets it (JAX, the default backend, for the text
    # tower): `runtime.Encoder(model, engine=..., precision=...)`, artefacts built once.
    "encoder-openvino-float32": ("exact", "ours, Encoder(engine='openvino', precision='float32')"),
    "encoder-auto-float32": ("exact", "ours, Encoder(engine='auto', precision='float32')"),
    "encoder-openvino-bfloat16": ("bf16", "ours, Encoder(engine='openvino', precision='bfloat16')"),
    "encoder-auto-bfloat16": ("bf16", "ours, Encoder(engine='auto', precision='bfloat16')"),
    "encoder-openvino-int8": ("int8", "ours, Encoder(engine='openvino', precision='int8')"),
    "encoder-auto-int8": ("int8", "ours, Encoder(engine='auto', precision='int8')"),
}
# Each tier's peak in benchmarks/fma_peak.c: what "% of peak" divides by.
TIER_PEAKS = {"exact": "float32", "bf16": "bfloat16", "int8": "int8"}
# Seconds a killed worker gets beyond --cap for imports, building and writing its output.
GRACE_S = 60


# ------------------------------------------------------------------ the cached artefacts
def folder(args):
    return Path(args.cache) / f"videoprism_engines_base_seed{SEED}_{args.frames}x{args.size}"


def artefacts(args):
    root = folder(args)
    return {
        "clips": root / f"clips_1+{args.calibration}.npz",
        "onnx": root / "model.onnx",
        "ort-int8": root / "model.int8.onnx",
        "ov-int8": root / f"model.nncf_int8_{args.calibration}clips.xml",
        "reference": root / "reference_features.npy",
        "weights": root / "weights.npz",
        "encoders": root / "encoders",  # runtime.Encoder's cache_dir
    }


def load_clips(path, frames, size, calibration):
    """The timed clip and the calibration clips, as one (1 + calibration, T, H, W, 3) array."""
    if path.exists():
        return np.load(path)["clips"]
    from videoprism_keras.video import load_video

    timed = load_video(CLIP, num_frames=frames, size=size)  # the official sampling
    spread = load_video(CLIP, num_frames=frames * max(calibration, 1), size=size)
    clips = np.stack([timed, *(spread[i::calibration] for i in range(calibration))])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, clips=clips)
    return clips


def build_ours(mode, weights_file=None):
    """The base model in `mode` with the float32 weights of `weights_file` (cast or
    quantized), or, without one, with random weights of seed 0 drawn here: each backend
    draws other numbers from one seed, so they are drawn once (JAX) and cached."""
    import keras

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    keras.utils.set_random_seed(SEED)
    dtype = "bfloat16" if mode == "bf16" else "float32"
    model = vp.VideoPrismBackbone(**PRESET_CONFIGS[PRESET], dtype=dtype)
    if weights_file is not None:
        stored = np.load(weights_file)
        model.set_weights([stored[f"w{i}"] for i in range(len(stored.files))])
    if mode == "int8":
        model.quantize("int8")
    return model


def export_onnx(args, path):
    """Our `export(format="onnx")` of the float32 model, from the JAX backend; and its
    weights, for our other backends and modes."""
    from videoprism_keras.export import export

    model = build_ours("f32")
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(artefacts(args)["weights"], **weights)
    export(model, path, format="onnx", num_frames=args.frames, size=args.size)


def quantize_ort(source, target):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def quantize_nncf(source, target, calibration):
    """NNCF's post-training int8 in transformer mode, calibrated on the real clips."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(source)
    data = nncf.Dataset([clip[None] for clip in calibration])
    quantized = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))  # fmt: skip
    ov.save_model(quantized, target, compress_to_fp16=False)  # the float weights as exported


def prepare(args, names):
    """Exports and quantizes what `names` need, each step once (cached) in its own process."""
    paths = artefacts(args)
    load_clips(paths["clips"], args.frames, args.size, args.calibration)
    steps = [("onnx", True)]  # also the weights of our rows
    steps += [("ort-int8", "ort-int8" in names), ("ov-int8", "ov-int8" in names)]
    for name in names:  # the Encoder builds (or finds) its artefact: in its own process
        if name.startswith("encoder-"):
            print(f"preparing {name} (runtime.Encoder's cache) ...", flush=True)
            env = {**os.environ, "KERAS_BACKEND": "jax"}
            subprocess.run(own_command(args, "--prepare", "encoder", "--worker", name), env=env)
    for step, needed in steps:
        done = paths[step].exists() and (step != "onnx" or paths["weights"].exists())
        if not needed or done:
            continue
        print(f"preparing {paths[step]} ...", flush=True)
        start = time.perf_counter()
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        done = subprocess.run(own_command(args, "--prepare", step), env=env)
        if done.returncode or not paths[step].exists():
            raise SystemExit(f"preparing {step} failed (exit {done.returncode})")
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def prepare_worker(args, step):
    paths = artefacts(args)
    clips = load_clips(paths["clips"], args.frames, args.size, args.calibration)
    if step == "encoder":  # one call builds the Encoder's artefact into its cache
        run, _ = runner(args.worker, args)
        run(clips[:1])
        return
    with tempfile.TemporaryDirectory(dir=paths[step].parent) as tmp:
        staged = Path(tmp) / paths[step].name  # renamed into place once complete
        if step == "onnx":
            export_onnx(args, staged)
        elif step == "ort-int8":
            quantize_ort(paths["onnx"], staged)
        else:
            quantize_nncf(paths["onnx"], staged, clips[1:])
        for file in Path(tmp).iterdir():  # OpenVINO's .bin first, its .xml last
            if file.name != staged.name:
                file.rename(paths[step].parent / file.name)
        staged.rename(paths[step])


# ------------------------------------------------------------------ the timed paths
def runner(name, args):
    """A function of the (1, T, H, W, 3) clip that returns the (1, T, N, D) features, and a
    note on how it runs (the precision OpenVINO picked)."""
    paths = artefacts(args)
    if name.startswith("ours-"):
        _, _, mode = name.split("-")
        from videoprism_keras.runtime import compile_inference, keep_freed_memory

        model = build_ours(mode, paths["weights"])
        keep_freed_memory()  # as `runtime.Encoder` does
        return compile_inference(model, lambda x: model(x)), ""
    if name.startswith("encoder-"):
        return encoder_runner(name, args)
    if name == "hf-compile":
        return transformers_runner(args)
    if name.startswith("ort-"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        source = paths["ort-int8" if name == "ort-int8" else "onnx"]
        session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0].name
        return lambda x: session.run(None, {feed: x})[0], ""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    if name == "ov-f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    source = paths["ov-int8" if name == "ov-int8" else "onnx"]
    compiled = core.compile_model(core.read_model(source), "CPU", config)
    request = compiled.create_infer_request()
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    note = f"the other ops in {precision}" if name == "ov-int8" else f"runs {precision}"
    return lambda x: request.infer([x])[compiled.output(0)].copy(), note


def encoder_runner(name, args):
    """`runtime.Encoder(model, engine, precision)` of the float32 model with the cached
    weights, NNCF calibrated on the same real clips as the ov-int8 row."""
    from videoprism_keras.runtime import Encoder

    _, engine, precision = name.split("-")
    paths = artefacts(args)
    clips = load_clips(paths["clips"], args.frames, args.size, args.calibration)
    model = build_ours("f32", paths["weights"])
    calibration = clips[1:] if precision == "int8" and engine in ("openvino", "auto") else None
    try:
        encoder = Encoder(model, engine=engine, precision=precision, calibration=calibration,
                          cache_dir=paths["encoders"])  # fmt: skip
    except ValueError:  # calibration is for OpenVINO's int8 only: auto may pick another
        encoder = Encoder(model, engine=engine, precision=precision, cache_dir=paths["encoders"])
    # describe() after the warm-up call, which loads the artefact
    return lambda x: encoder.video(x)["spatiotemporal_features"], encoder.describe


def transformers_state(args, weights):
    """transformers' VideoPrismVisionModel state dict holding our float32 weights."""
    import keras
    import torch

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    model = vp.VideoPrismBackbone(**PRESET_CONFIGS[PRESET])  # for the weights' names only
    ours = {w.path: value for w, value in zip(model.weights, weights, strict=True)}
    del model
    keras.backend.clear_session()
    size, dim = PRESET_CONFIGS[PRESET]["patch_size"], PRESET_CONFIGS[PRESET]["hidden_dim"]
    patch = ours["video_encoder/patch_proj/kernel"].reshape(size, size, 3, dim)
    embeddings, enc = "spatial_embeddings.", "video_encoder/"
    state = {
        # (row, col, channel) patches → Conv3d's (out, channel, time, row, col)
        f"{embeddings}patch_embeddings.projection.weight": patch.transpose(3, 2, 0, 1)[:, :, None],
        f"{embeddings}patch_embeddings.projection.bias": ours[f"{enc}patch_proj/bias"],
        f"{embeddings}position_embeddings": ours[f"{enc}spatial_positions/table"][None],
        "temporal_embeddings.position_embeddings": ours[f"{enc}temporal_positions/table"][None],
    }
    for stack, norm, theirs in (("spatial", "layernorm1", "spatial_layers"),
                                ("temporal", "layernorm2", "temporal_layers")):  # fmt: skip
        # transformers' LayerNorm scales by weight + 1 (the official checkpoints' convention)
        state[f"{norm}.weight"] = ours[f"video_encoder/{stack}_norm/gamma"] - 1.0
        state[f"{norm}.bias"] = ours[f"video_encoder/{stack}_norm/beta"]
        layer = 0
        while f"video_encoder/{stack}_encoder/layer_{layer}/mlp/in_proj/kernel" in ours:
            src, dst = f"video_encoder/{stack}_encoder/layer_{layer}/", f"{theirs}.{layer}."
            qkv = np.split(ours[src + "attention/qkv_proj/kernel"], 3, axis=-1)
            qkv_bias = np.split(ours[src + "attention/qkv_proj/bias"], 3)
            for i, name in enumerate("qkv"):
                state[f"{dst}attention.{name}_proj.weight"] = qkv[i].T
                state[f"{dst}attention.{name}_proj.bias"] = qkv_bias[i]
            pairs = {"attention.o_proj": "attention/out_proj", "mlp.fc1": "mlp/in_proj",
                     "mlp.fc2": "mlp/out_proj"}  # fmt: skip
            for their, our in pairs.items():
                state[f"{dst}{their}.weight"] = ours[f"{src}{our}/kernel"].T
                state[f"{dst}{their}.bias"] = ours[f"{src}{our}/bias"]
            for their, our in (("layernorm_before", "attention_norm"), ("layernorm_after",
                                                                         "mlp_norm")):  # fmt: skip
                state[f"{dst}{their}.weight"] = ours[f"{src}{our}/gamma"] - 1.0
                state[f"{dst}{their}.bias"] = ours[f"{src}{our}/beta"]
            layer += 1
    return {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in state.items()}


def transformers_runner(args):
    """transformers' VideoPrism vision model with our weights, under torch.compile (the
    warm-up call compiles), features reshaped to ours: (1, T, N, D)."""
    import torch
    from transformers import VideoPrismVisionConfig, VideoPrismVisionModel

    torch.set_num_threads(args.threads)
    stored = np.load(artefacts(args)["weights"])
    weights = [stored[f"w{i}"] for i in range(len(stored.files))]
    from videoprism_keras.presets import PRESET_CONFIGS

    preset = PRESET_CONFIGS[PRESET]  # its position tables; resized for another clip shape
    config = VideoPrismVisionConfig(
        num_frames=preset["num_frames"],
        image_size=preset["image_shape"][0],
        attn_logit_softcapping=preset["attention_logit_soft_cap"],
    )
    model = VideoPrismVisionModel(config).eval()
    model.load_state_dict(transformers_state(args, weights), strict=True)
    resize = (args.frames, args.size) != (preset["num_frames"], preset["image_shape"][0])

    def features(pixels):
        return model(pixel_values_videos=pixels, interpolate_pos_encoding=resize).last_hidden_state

    forward = torch.compile(features)

    def run(x):
        with torch.inference_mode():
            out = forward(torch.from_numpy(x).permute(0, 1, 4, 2, 3)).numpy()  # (B, T, C, H, W)
        return out.reshape(x.shape[0], x.shape[1], -1, out.shape[-1])

    return run, f"transformers {version_of('transformers')}, torch.compile default mode"


def version_of(package):
    from importlib.metadata import version

    return version(package)


def worker(args, name, out_file):
    """One path: build, warm up, time; its features to `out_file`, its figures as JSON."""
    start = time.perf_counter()
    clips = load_clips(artefacts(args)["clips"], args.frames, args.size, args.calibration)
    clip = clips[:1]
    run, note = runner(name, args)
    first = time.perf_counter()
    features = np.asarray(run(clip), np.float32)  # warm-up: compilation, allocation
    warm_s = time.perf_counter() - first
    np.save(out_file, features)
    note = note() if callable(note) else note
    times = []
    for _ in range(args.repeats):
        if time.perf_counter() - start + (times[-1] if times else warm_s) > args.cap:
            break  # the next call would not end within the cap
        call = time.perf_counter()
        run(clip)
        times.append(time.perf_counter() - call)
    print(json.dumps({"times": times, "warm_s": warm_s, "note": note}))


def spawn(name, args, out_file):
    """`name`'s worker in its own process on `--threads` cores, killed after the cap."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if name.startswith("ours-"):
        env["KERAS_BACKEND"] = name.split("-")[1]
    elif name.startswith("encoder-"):
        env["KERAS_BACKEND"] = "jax"  # the default backend
    elif name == "hf-compile":
        env["KERAS_BACKEND"] = "torch"  # our model only names the weights there
    cores = sorted(os.sched_getaffinity(0))[: args.threads]
    command = own_command(args, "--worker", name, "--out", str(out_file))
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=args.cap + GRACE_S, preexec_fn=pin(cores))  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"capped: no timed call within {args.cap} s", "capped": True}
    if done.returncode:
        lines = done.stderr.strip().splitlines() or ["failed"]
        return {"error": f"failed: {lines[-1][:150]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def pin(cores):
    return lambda: os.sched_setaffinity(0, cores)


def own_command(args, *extra):
    options = ["--cache", args.cache, "--frames", str(args.frames), "--size", str(args.size)]
    options += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
    options += ["--cap", str(args.cap), "--calibration", str(args.calibration)]
    return [sys.executable, __file__, *options, *extra]


# ------------------------------------------------------------------ the table
def cosines(reference, features):
    """The lowest cosine between a token's two feature vectors, and that of the mean-pooled
    (B, D) features."""
    a, b = (np.asarray(x, np.float64) for x in (reference, features))

    def cosine(x, y):
        return np.sum(x * y, -1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1)

    tokens = cosine(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
    pooled = cosine(a.mean(axis=(1, 2)), b.mean(axis=(1, 2)))
    return float(tokens.min()), float(pooled.min())


def seconds(row):
    return statistics.median(row["times"]) if row.get("times") else row.get("warm_s")


def table(rows, args, peaks):
    flops = forward_flops(args.frames, args.size)
    timed = {n: seconds(r) for n, r in rows.items() if seconds(r)}
    ours_f32 = min((timed[n] for n in timed if n.startswith("ours-") and n.endswith("f32")),
                   default=None)  # fmt: skip
    head = f"| tier | path | s (median of {args.repeats}) | calls | cos tokens (min) / pooled |"
    print(f"\n{head} x our best of the tier | x our best float32 | GFLOP/s | note |")
    print("|---" * 9 + "|")
    for tier, threshold in TIERS.items():
        names = [n for n in rows if PATHS[n][0] == tier]
        ours = [timed[n] for n in names if n.startswith("ours-") and n in timed]
        best = min(ours, default=None)
        for name in sorted(names, key=lambda n: timed.get(n, float("inf"))):
            row, label = rows[name], PATHS[name][1]
            if name not in timed:
                print(f"| {tier} | {label} | - | - | - | - | - | - | {row['error']} |")
                continue
            s = timed[name]
            calls = len(row["times"]) or "warm-up only"
            cos = row.get("cos")
            cos_text = f"{cos[0]:.6f} / {cos[1]:.6f}" if cos else "-"
            notes = [row.get("note", "")]
            if cos and cos[0] < threshold:
                notes.append(f"below the tier's {threshold}")
            if row.get("capped") or len(row["times"]) < args.repeats:
                notes.append(f"capped at {args.cap} s")
            versus = f"{best / s:.2f}x" if best else "-"
            versus_f32 = f"{ours_f32 / s:.2f}x" if ours_f32 else "-"
            rate = flops / s / 1e9
            peak = peaks.get(TIER_PEAKS[tier])
            share = f" ({100 * rate / peak:.0f}% of {TIER_PEAKS[tier]} peak)" if peak else ""
            note = "; ".join(n for n in notes if n)
            print(f"| {tier} | {label} | {s:.2f} | {calls} | {cos_text} | {versus} | "
                  f"{versus_f32} | {rate:.0f}{share} | {note} |")  # fmt: skip


def versions():
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for module in ("jax", "tensorflow", "torch", "keras", "onnxruntime", "openvino", "nncf"):
        try:
            found.append(f"{module} {version(module)}")
        except PackageNotFoundError:  # a missing engine only fails its rows
            found.append(f"{module} missing")
    return ", ".join(found)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", default=tempfile.gettempdir(),
                        help="folder of the export, the quantized models and the clips "
                             "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path")
    parser.add_argument("--threads", type=int, default=2, help="cores per path")
    parser.add_argument("--cap", type=float, default=300,
                        help="seconds per path (building, warm-up and timed calls)")  # fmt: skip
    paths = ", ".join(PATHS)
    parser.add_argument("--only", nargs="+", choices=list(PATHS), metavar="PATH",
                        help=f"these paths only, of: {paths}")  # fmt: skip
    parser.add_argument("--skip", nargs="+", choices=list(PATHS), default=[], metavar="PATH")
    parser.add_argument("--calibration", type=int, default=8, help="NNCF's calibration clips")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--worker", choices=list(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", choices=["onnx", "ort-int8", "ov-int8", "encoder"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:  # "encoder" names its row with --worker
        return prepare_worker(args, args.prepare)
    if args.worker:
        return worker(args, args.worker, args.out)
    names = [n for n in (args.only or PATHS) if n not in args.skip]
    names.sort(key=list(PATHS).index)
    peaks = fma_peaks()
    print(f"{cpu_model()}, {os.cpu_count()} CPUs: peaks {describe_peaks(peaks)} "
          "(benchmarks/fma_peak.c)")  # fmt: skip
    print(f"{versions()}\nbase model, seed {SEED}, clip 1 x {args.frames} x {args.size}^2, "
          f"{args.threads} threads per path, {forward_flops(args.frames, args.size) / 1e12:.3f} "
          f"TFLOP per call; cache {folder(args)}")  # fmt: skip
    prepare(args, names)
    paths = artefacts(args)
    rows = {}
    with tempfile.TemporaryDirectory() as out:
        if not paths["reference"].exists() and "ours-jax-f32" not in names:
            names.insert(0, "ours-jax-f32")  # the reference must exist; it is timed too
        for name in names:
            out_file = Path(out) / f"{name}.npy"
            row = spawn(name, args, out_file)
            if name == "ours-jax-f32" and out_file.exists() and not paths["reference"].exists():
                np.save(paths["reference"], np.load(out_file))
            if out_file.exists() and paths["reference"].exists():
                row["cos"] = cosines(np.load(paths["reference"]), np.load(out_file))
            rows[name] = row
            s = seconds(row)
            print(f"  {name}: " + (f"{s:.2f} s, {len(row['times'])} timed calls, "
                  f"cosines {row.get('cos')}" if s else row["error"]), flush=True)  # fmt: skip
    table(rows, args, peaks)


if __name__ == "__main__":
    main()
