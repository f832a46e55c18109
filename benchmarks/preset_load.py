"""First vs later `from_preset` of a built-in name: convert-and-cache vs cached load.

The real first load also downloads the checkpoint (458 MB for base), not timed here.

The official checkpoint cannot be downloaded here, so a random checkpoint of the
real base shapes is placed in a temporary Hugging Face cache exactly where
huggingface_hub keeps a download; everything after the download is the real path.
Each load runs in a fresh process. Run: `.venv/bin/python benchmarks/preset_load.py`.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
LOAD = """
import sys, time
sys.path.insert(0, {tests!r})
import huggingface_hub.constants as c
c.HF_HUB_CACHE = {hf!r}
import videoprism_keras as vp
import keras
start = time.perf_counter()
model = vp.VideoPrismBackbone.from_preset({name!r})
print(time.perf_counter() - start)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="videoprism_public_v1_base")
    parser.add_argument("--repeats", type=int, default=2, help="cached loads to time")
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from preset_fakes import put_in_hf_cache

    import videoprism_keras as vp
    from videoprism_keras.checkpoint import export_flax_checkpoint
    from videoprism_keras.presets import PRESET_FILES

    with tempfile.TemporaryDirectory() as tmp:
        repo, filename = PRESET_FILES[args.preset]
        npz = Path(tmp) / filename
        export_flax_checkpoint(
            vp.VideoPrismBackbone.from_preset(args.preset, load_weights=False), npz
        )
        put_in_hf_cache(Path(tmp) / "hf", repo, filename, npz)
        npz.unlink()
        env = {**os.environ, "VIDEOPRISM_CACHE": f"{tmp}/cache", "HF_HUB_OFFLINE": "1"}
        script = LOAD.format(tests=str(TESTS), hf=f"{tmp}/hf", name=args.preset)

        def load():
            out = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
            )
            return float(out.stdout.strip().splitlines()[-1])

        first = load()
        later = sorted(load() for _ in range(args.repeats))[args.repeats // 2]
    import keras

    print(f"{args.preset} on {keras.backend.backend()} (from_preset alone, after imports)")
    print(f"first load (convert + cache): {first:6.1f} s")
    print(f"later load (cached preset):   {later:6.1f} s   -> {first / later:.1f}x faster")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
