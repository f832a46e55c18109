"""Long videos in bounded memory: peak RSS and time of `load_video` against duration.

Generates 720p H.264 videos (24 fps, a moving square on a gradient, so they encode
fast and small) of 1, 5 and 10 minutes in a temporary folder, then loads 16 frames at
288×288 from each, once per strategy, each in a fresh process, and prints the peak
resident memory of that process. Peak RSS must not grow with duration: only the 16
sampled frames are ever kept. "stream" decodes every frame (time grows with
duration); "auto" seeks to the keyframe before each sampled frame after a packet scan
(time nearly flat). A 10-minute 720p video is 14,400 frames, 40 GB as uint8 RGB:
what the official decode-everything approach would hold in memory.

    .venv/bin/python benchmarks/video_decode.py              # 1, 5, 10 minutes
    .venv/bin/python benchmarks/video_decode.py --quick      # 0.5 and 2 minutes
    .venv/bin/python benchmarks/video_decode.py --minutes 2,20 --container mkv
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FPS, HEIGHT, WIDTH = 24, 720, 1280


def generate(path: Path, minutes: float) -> float:
    """Writes the test video; returns the seconds it took.

    The 2-second cycle of frames is built and converted to YUV once, then re-encoded
    with new timestamps, so generation time is the encoder's (x264 ultrafast) only.
    """
    import av

    base = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    base[..., 1] = np.linspace(0, 255, WIDTH, dtype=np.uint8)
    cycle = []
    for i in range(2 * FPS):
        image = base.copy()
        x = i * (WIDTH - 96) // (2 * FPS)
        image[300:396, x : x + 96] = 255
        cycle.append(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p"))
    start = time.perf_counter()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35", "g": str(2 * FPS)}
        for i in range(round(minutes * 60 * FPS)):
            frame = cycle[i % len(cycle)]
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return time.perf_counter() - start


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure(path: str, strategy: str) -> None:
    """Runs in a fresh process: prints one JSON line with time and peak RSS.

    The peak is the kernel's high-water mark (VmHWM), reset after the imports so that
    it measures loading alone (where /proc allows; otherwise the whole process).
    """
    import av  # noqa: F401  (imported before the baseline, like the code under test)
    import PIL.Image  # noqa: F401

    from videoprism_keras.video import load_video

    try:
        baseline = _status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        baseline = 0.0
    start = time.perf_counter()
    frames = load_video(path, num_frames=16, size=(288, 288), strategy=strategy)
    seconds = time.perf_counter() - start
    try:
        peak = _status_mb("VmHWM")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": seconds, "peak_mb": peak, "baseline_mb": baseline}
    print(json.dumps(result | {"shape": list(frames.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", default="1,5,10", help="comma-separated durations")
    parser.add_argument("--quick", action="store_true", help="0.5 and 2 minutes only")
    parser.add_argument(
        "--container",
        default="mp4",
        choices=["mp4", "mkv"],
        help="mkv stores no frame count: a packet scan counts the frames",
    )
    parser.add_argument("--strategies", default="auto,stream")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(*args.measure)
    durations = [0.5, 2.0] if args.quick else [float(m) for m in args.minutes.split(",")]
    strategies = args.strategies.split(",")
    print(f"720p H.264 {FPS} fps .{args.container}; load_video(num_frames=16, size=288)")
    header = f"{'minutes':>7} {'frames':>7} {'file MB':>8} {'made in s':>9}"
    print(header + "".join(f" {s + ' s':>9} {s + ' RSS MB':>12}" for s in strategies))
    baseline = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in durations:
            path = Path(tmp) / f"{minutes}min.{args.container}"
            made = generate(path, minutes)
            row = f"{minutes:7.2f} {round(minutes * 60 * FPS):7d} "
            row += f"{path.stat().st_size / 2**20:8.1f} {made:9.1f}"
            for strategy in strategies:
                command = [sys.executable, __file__, "--measure", str(path), strategy]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                row += f" {r['seconds']:9.2f} {r['peak_mb']:12.0f}"
                baseline = r["baseline_mb"]
            print(row, flush=True)
            path.unlink()
    print("RSS: the process's peak resident memory while loading (VmHWM, reset after the")
    print(f"imports; {baseline:.0f} MB before loading: Python, numpy, PyAV, PIL). The rest is")
    print("FFmpeg's decoder state and the 16 kept frames, whatever the video's duration.")


if __name__ == "__main__":
    main()
