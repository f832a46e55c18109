"""Cold start: from a command's start to its first result, first and second process.

For each backend, on VideoPrism-LvT-B's configuration (random weights saved as a preset
directory; the real tokenizer format, from ../shared/media): the wall time of
`videoprism classify CLIP` (one clip, 16×288², three labels) in a process with an empty
compilation cache, then in a second process that finds the first one's cache; beside them,
what such a process cannot avoid: the model load and one steady-state clip (the median
of three after a warm-up, in one process). The goal (issue 15): second run <= 1.5 × (load
+ steady clip).

    .venv/bin/python benchmarks/cold_start.py [--backends jax,torch,tensorflow]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("VIDEOPRISM_SHARED", Path(__file__).parents[2] / "shared"))
CLIP = SHARED / "media" / "water_bottle_drumming.mp4"
SPM = SHARED / "media" / "test_spm.model"
LABELS = "drumming,cooking,dancing"

STEADY = """
import json, sys, time
import numpy as np
t = time.perf_counter()
from videoprism_keras import VideoPrismBackbone
from videoprism_keras.runtime import Encoder
model = VideoPrismBackbone.from_preset(sys.argv[1])
load = time.perf_counter() - t
encoder = Encoder(model)
clip = np.random.default_rng(0).uniform(size=(1, 16, 288, 288, 3)).astype("float32")
times = []
for _ in range(4):
    t = time.perf_counter()
    encoder.video(clip)
    times.append(time.perf_counter() - t)
print(json.dumps({"load_s": load, "first_clip_s": times[0], "steady_clip_s": sorted(times[1:])[1]}))
"""


def make_preset(folder):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Keras' saving loads TensorFlow
    from videoprism_keras import VideoPrismBackbone
    from videoprism_keras.presets import PRESET_CONFIGS

    VideoPrismBackbone(**PRESET_CONFIGS["videoprism_lvt_public_v1_base"]).save_to_preset(folder)


def classify(preset, backend, cache):
    env = {**os.environ, "KERAS_BACKEND": backend, "VIDEOPRISM_CACHE": cache}
    command = [sys.executable, "-m", "videoprism_keras.cli", "classify", str(CLIP),
               "--preset", preset, "--tokenizer", str(SPM), "--labels", LABELS, "--json",
               "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{backend}: classify failed: {done.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        preset = os.path.join(tmp, "lvt_base_random")
        make_preset(preset)
        print("backend      cold_s  second_s  load_s  steady_clip_s  second/(load+steady)")
        for backend in args.backends.split(","):
            cache = os.path.join(tmp, f"cache-{backend}")
            cold, second = classify(preset, backend, cache), classify(preset, backend, cache)
            env = {**os.environ, "KERAS_BACKEND": backend, "VIDEOPRISM_CACHE": cache}
            out = subprocess.run([sys.executable, "-c", STEADY, preset], env=env, check=True,
                                 capture_output=True, text=True).stdout  # fmt: skip
            steady = json.loads(out.splitlines()[-1])
            floor = steady["load_s"] + steady["steady_clip_s"]
            row = f"{backend:<12} {cold:6.1f}  {second:8.1f}  {steady['load_s']:6.1f}  "
            print(row + f"{steady['steady_clip_s']:13.2f}  {second / floor:19.2f}", flush=True)


if __name__ == "__main__":
    main()
