"""Quantized models against float32 and bfloat16: speed, peak memory, size on disk, error.

    .venv/bin/python benchmarks/quantization.py [--backend jax] [--frames 16] [--repeats 3]

Every (model, mode) runs in a fresh process (peak memory is the process's own) on a real
clip (shared/media/water_bottle_drumming.mp4, the official colab's preprocessing) through
two models: the small golden LvT checkpoint (shared/golden/lvt_small: video and text
towers) and a VideoPrism-B video-only model with random weights. Error against float32
on the same weights: relative L2 of the (B, T, N, D) features, and the lowest cosine
similarity of an embedding (the LvT video and text embeddings; a token's feature vector
for the video-only model).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(
    os.environ.get("VIDEOPRISM_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared")
)
CLIP = SHARED / "media" / "water_bottle_drumming.mp4"
MODES = ("float32", "bfloat16", "int8", "int4", "float8")
MODELS = ("golden_lvt_small", "random_base")
TEXTS = ["a person is drumming on a water bottle.", "a dog runs on the beach.", "cooking pasta."]


def build(model_name, mode, frames):
    """The model in `mode` (float32 weights quantized in place), and its clip shape."""
    import keras

    import videoprism_keras as vp
    from videoprism_keras.presets import PRESET_CONFIGS

    dtype = "bfloat16" if mode == "bfloat16" else "float32"
    if model_name == "golden_lvt_small":
        model = vp.load_flax_checkpoint(
            SHARED / "golden" / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0, dtype=dtype
        )
    else:
        # The same random weights in every process: drawn in float32, then cast (weights
        # drawn in bfloat16 would be other random numbers).
        keras.utils.set_random_seed(0)
        model = vp.VideoPrismBackbone(**PRESET_CONFIGS["videoprism_public_v1_base"])
        if dtype != "float32":
            weights = model.get_weights()
            model = vp.VideoPrismBackbone.from_config({**model.get_config(), "dtype": dtype})
            model.set_weights(weights)
    if mode in ("int8", "int4", "float8"):
        model.quantize(mode)
    count = frames if model_name == "random_base" else model.num_frames
    return model, count, tuple(model.frame_shape[:2])


def worker(model_name, mode, frames, repeats, out_dir):
    from videoprism_keras.runtime import compile_inference, keep_freed_memory
    from videoprism_keras.video import load_video

    keep_freed_memory()
    model, count, size = build(model_name, mode, frames)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_to_preset(tmp)
        size_mb = (Path(tmp) / "model.weights.h5").stat().st_size / 1e6
    clip = load_video(CLIP, num_frames=count, size=size)[None]
    video = compile_inference(model, lambda x: model.encode_video(x))
    video(clip)  # compile, warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = video(clip)
        times.append(time.perf_counter() - start)
    arrays = {"features": out["spatiotemporal_features"]}
    if model.is_multimodal:
        from videoprism_keras.tokenizer import VideoPrismTokenizer

        tokenizer = VideoPrismTokenizer(SHARED / "media" / "test_spm.model", max_length=16)
        ids, mask = tokenizer.tokenize_texts(TEXTS)
        ids = np.minimum(ids, model.vocabulary_size - 1)  # the golden vocabulary is smaller
        text = compile_inference(model, lambda i, m: model.encode_text(i, m))
        arrays["vision_embeddings"] = out["vision_embeddings"]
        arrays["text_embeddings"] = text(ids, mask)
    np.savez(Path(out_dir) / f"{model_name}-{mode}.npz", **arrays)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": float(np.median(times)), "peak_mb": peak_mb, "size_mb": size_mb,
                      "clip": list(clip.shape)}))  # fmt: skip


def errors(reference, other):
    """Relative L2 error of the features and the lowest cosine of the embeddings."""
    ref, got = (np.asarray(x["features"], np.float64) for x in (reference, other))
    rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    names = [k for k in reference if k.endswith("embeddings")] or ["features"]
    cosines = []
    for name in names:
        a = np.asarray(reference[name], np.float64).reshape(-1, reference[name].shape[-1])
        b = np.asarray(other[name], np.float64).reshape(a.shape)
        cosines.append(np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1))
    return rel, float(np.min(np.concatenate(cosines)))


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="jax", choices=["jax", "torch", "tensorflow"])
    parser.add_argument("--frames", type=int, default=16, help="frames of the base model's clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="float32 always runs: it is the reference")  # fmt: skip
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.frames, args.repeats, args.out)
        return
    env = {**os.environ, "KERAS_BACKEND": args.backend}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; backend {args.backend}; "
          f"median of {args.repeats} compiled calls after a warm-up")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        for model_name in args.models:
            rows = {}
            for mode in ["float32", *(m for m in args.modes if m != "float32")]:
                options = ["--frames", str(args.frames), "--repeats", str(args.repeats)]
                command = [sys.executable, __file__, "--worker", model_name, mode, "--out", out]
                command += options
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode:
                    rows[mode] = None
                    print(f"{model_name} {mode}: failed: {done.stderr.strip().splitlines()[-1]}")
                    continue
                rows[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            reference = np.load(Path(out) / f"{model_name}-float32.npz")
            clip = next(r["clip"] for r in rows.values() if r)
            print(f"\n{model_name}, clip {'x'.join(map(str, clip))}")
            print(f"{'mode':10s} {'median s':>9s} {'x fp32':>7s} {'peak MB':>8s} {'disk MB':>8s} "
                  f"{'rel. L2':>9s} {'min cos':>9s}")  # fmt: skip
            base = rows["float32"]
            for mode, row in rows.items():
                if row is None:
                    continue
                rel, cos = errors(reference, np.load(Path(out) / f"{model_name}-{mode}.npz"))
                speedup = base["seconds"] / row["seconds"]
                print(f"{mode:10s} {row['seconds']:9.3f} {speedup:6.2f}x {row['peak_mb']:8.0f} "
                      f"{row['size_mb']:8.2f} {rel:9.2e} {cos:9.6f}")  # fmt: skip


if __name__ == "__main__":
    main()
