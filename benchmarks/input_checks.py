"""What checking pixel values costs: `model/inputs.check_pixel_values` on one base clip.

    python benchmarks/input_checks.py

The check reads the clip once (min, max; uint8 is scaled instead). Compare with a
forward pass of the same clip (`benchmarks/speed.py`).
"""

import timeit
from pathlib import Path

import numpy as np

from videoprism_keras.model.inputs import check_pixel_values


def main():
    clip = np.random.default_rng(0).random((1, 16, 288, 288, 3), dtype=np.float32)
    cpu = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
    print(f"CPU: {cpu[0].split(':', 1)[1].strip() if cpu else 'unknown'}")
    for name, pixels in (("float32", clip), ("uint8", (clip * 255).astype(np.uint8))):
        runs = timeit.repeat(lambda p=pixels: check_pixel_values(p), number=10, repeat=7)
        print(f"{name:8s} 1×16×288²: {min(runs) / 10 * 1e3:.2f} ms per clip (best of 7)")


if __name__ == "__main__":
    main()
