"""Moments of files: the streaming rate of `videoprism moments FILE` against `index` on the
same file, same model, same windows.

Generates one H.264 video (lavfi `testsrc2`: moving, so every window differs) in a
temporary folder, then times, after one untimed warm-up of each on the first seconds
(compilation), the two ways through its windows:

- `stream`: `apps.streaming.stream_curves` (what `moments FILE` runs before refining):
  decode, embed, keep one score per window;
- `index`: `VideoIndex.add_videos` into a new index (what `index --clip-seconds` runs):
  decode, embed, write the vectors and a poster per window to LanceDB.

Each is run `--repeat` times, alternating; the best run of each is reported in windows/s,
with their ratio. Both decode in a background thread while the model runs.

    .venv/bin/python benchmarks/moments_stream.py                       # base LvT, 2 min
    .venv/bin/python benchmarks/moments_stream.py --preset ../shared/golden/lvt_small.ckpt.npz \\
        --soft-cap 5 --seconds 60                                        # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, seconds: float, fps: int, width: int, height: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        with av.open(f"testsrc2=size={width}x{height}:rate={fps}", format="lavfi") as src:
            for i, frame in enumerate(src.decode(video=0)):
                if i >= round(seconds * fps):
                    break
                frame.pts = None
                out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode())
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="videoprism_lvt_public_v1_base")
    p.add_argument("--soft-cap", type=float, help="for an official .npz")
    p.add_argument("--seconds", type=float, default=120.0, help="the video's length")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--clip-seconds", type=float, default=4.0, help="moments' FILE default")
    p.add_argument("--stride-seconds", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()

    import keras

    from videoprism_keras import VideoPrismBackbone
    from videoprism_keras.apps import VideoIndex, embed_videos
    from videoprism_keras.apps.streaming import stream_curves
    from videoprism_keras.runtime import Encoder
    from videoprism_keras.video import Sampling

    overrides = {"attention_logit_soft_cap": args.soft_cap} if args.soft_cap else {}
    model = VideoPrismBackbone.from_preset(args.preset, **overrides)
    sampling = Sampling.for_model(model)
    frames, size = sampling.num_frames, sampling.size
    windows = {"clip_seconds": args.clip_seconds, "stride_seconds": args.stride_seconds}
    common = {"num_frames": frames, "size": size, "batch_size": args.batch_size,
              "progress": False}  # fmt: skip
    encoder = Encoder(model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        made = time.perf_counter()
        video = generate(folder / "video.mp4", args.seconds, args.fps, args.width, args.height)
        made = time.perf_counter() - made
        warm = generate(folder / "warm.mp4", 2 * args.clip_seconds, args.fps, args.width,
                        args.height)  # fmt: skip
        query = embed_videos(model, [warm], encoder=encoder, **common).vectors[0]

        def stream(path) -> int:
            return sum(len(c) for c in stream_curves(model, [path], query, encoder=encoder,
                                                     **windows, **common))  # fmt: skip

        def index(path, run=[0]) -> int:  # noqa: B006 (a counter: each run a new index)
            run[0] += 1
            held = VideoIndex(folder / f"index{run[0]}")
            added = held.add_videos(model, [path], encoder=encoder, **windows, **common)
            return len(added)

        stream(warm), index(warm)
        best = {"stream": np.inf, "index": np.inf}
        counts = {}
        for _ in range(args.repeat):
            for name, run in (("stream", stream), ("index", index)):
                start = time.perf_counter()
                counts[name] = run(video)
                best[name] = min(best[name], time.perf_counter() - start)
    assert counts["stream"] == counts["index"], counts
    n = counts["stream"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Keras {keras.version()} on {keras.backend.backend()}")  # fmt: skip
    print(f"{args.preset}: {frames} frames of {size[0]}x{size[1]}, batch {args.batch_size}")
    print(f"video: {args.seconds:g} s of {args.width}x{args.height} at {args.fps} fps "
          f"(made in {made:.1f} s); windows {args.clip_seconds:g} s every "
          f"{args.stride_seconds:g} s: {n}")  # fmt: skip
    print(f"{'way':<8}{'best s':>9}{'windows/s':>11}")
    for name in ("stream", "index"):
        print(f"{name:<8}{best[name]:>9.2f}{n / best[name]:>11.2f}")
    print(f"stream / index rate: {best['index'] / best['stream']:.2f}x")


if __name__ == "__main__":
    main()
