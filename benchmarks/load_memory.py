"""Peak memory of loading a checkpoint of the real large-LvT shapes.

Writes a random checkpoint in the official layout (2.3 GB for large LvT), then, each
in a fresh process, reports the peak resident memory against the file size of
- `load_flax_checkpoint(path)`, and
- a built-in name's first `from_preset` (convert, write the cached preset, load it
  back), with the checkpoint placed where huggingface_hub keeps a download.
Run: `.venv/bin/python benchmarks/load_memory.py [--config lvt_large] [--dir DIR]`.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESET_OF = {"base": "videoprism_public_v1_base", "lvt_large": "videoprism_lvt_public_v1_large"}
CONFIGS = {
    "base": dict(
        num_frames=16,
        hidden_dim=768,
        intermediate_dim=3072,
        num_heads=12,
        num_spatial_layers=12,
        num_auxiliary_layers=0,
    ),
    "lvt_large": dict(
        num_frames=8,
        hidden_dim=1024,
        intermediate_dim=4096,
        num_heads=16,
        num_spatial_layers=24,
        num_auxiliary_layers=2,
        vocabulary_size=32000,
        num_text_layers=12,
    ),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_checkpoint(name: str, path: str) -> None:
    import videoprism_keras as vp
    from videoprism_keras.checkpoint import export_flax_checkpoint

    model = vp.VideoPrismBackbone(patch_size=18, num_temporal_layers=4, **CONFIGS[name])
    export_flax_checkpoint(model, path)


def measure(path: str, preset: str | None) -> None:
    import videoprism_keras as vp

    vp.VideoPrismBackbone  # noqa: B018  (import Keras and the backend before the baseline)
    import keras

    baseline = peak_rss_mb()
    start = time.perf_counter()
    if preset:
        model = vp.VideoPrismBackbone.from_preset(preset)
    else:
        model = vp.load_flax_checkpoint(path)
    seconds = time.perf_counter() - start
    size = os.path.getsize(path) / 2**20
    peak = peak_rss_mb()
    what = f"from_preset({preset!r}), first call" if preset else "load_flax_checkpoint"
    print(f"{what}, backend {keras.backend.backend()}")
    print(f"  checkpoint      {size:8.0f} MB  ({model.count_params() / 1e6:.0f}M parameters)")
    print(f"  process before  {baseline:8.0f} MB  (Python, Keras, backend)")
    print(f"  peak while load {peak:8.0f} MB  -> {(peak - baseline) / size:.2f}x the checkpoint")
    print(f"  load time       {seconds:8.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="lvt_large", choices=sorted(CONFIGS))
    parser.add_argument("--dir", default=None, help="where to write the temporary checkpoint")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        return write_checkpoint(args.config, args.write)
    if args.measure:
        return measure(args.measure, args.preset)
    from videoprism_keras.presets import PRESET_FILES

    preset = PRESET_OF[args.config]
    repo, filename = PRESET_FILES[preset]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from preset_fakes import hf_cache_path

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = str(hf_cache_path(Path(tmp) / "hf", repo, filename))  # as if downloaded
        env = {**os.environ, "HF_HUB_CACHE": os.path.join(tmp, "hf"), "HF_HUB_OFFLINE": "1",
               "VIDEOPRISM_CACHE": os.path.join(tmp, "cache")}  # fmt: skip
        run = [sys.executable, __file__, "--config", args.config]
        # Each step in a fresh process, so the peak we read is the loader's alone.
        subprocess.run([*run, "--write", path], check=True)
        subprocess.run([*run, "--measure", path], check=True, env=env)
        subprocess.run([*run, "--measure", path, "--preset", preset], check=True, env=env)


if __name__ == "__main__":
    main()
