"""Moments: the coarse stage of `VideoIndex.moments` (no model) on a large index.

A synthetic index of `--videos` videos of `--windows` windows each (2 s windows every
1 s, `--dim`-d unit vectors): each video's windows are its own random scene plus
noise, all sharing a common direction, as real embeddings do (unrelated clips are far
from orthogonal). Each of `--queries` random query directions is planted in
`--planted` videos as a moment of 4–20 s: a window's vector is the normalised mix of
its scene and the query in the share of the window the moment covers (ramps at the
edges, as a real moment's windows have). Then each query's `moments(q, top_k=planted)`
is timed (`--repeats` times each; p50/p95 over all calls, after one first call that
reads the vectors and groups the windows), and checked: every planted moment found,
start and end within one stride. `product_p50_ms` times the matrix-vector product over
the held vectors alone (the floor of a call: it reads every vector once).

    .venv/bin/python benchmarks/moments.py                          # 10k x 100 = 1M windows
    .venv/bin/python benchmarks/moments.py --videos 1000            # a quick check
"""

import argparse
import json
import os
import resource
import shutil
import tempfile
import time

import numpy as np

CLIP_S, STRIDE_S, COMMIT = 2.0, 1.0, 50_000


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def plan(args, rng):
    """Queries and where each is planted: {video: (query, start_s, end_s)}."""
    queries = unit(rng.normal(size=(args.queries, args.dim)))
    videos = rng.choice(args.videos, size=(args.queries, args.planted), replace=False)
    planted = {}
    for q, row in enumerate(videos):
        for v in row:
            length = rng.uniform(4, 20)
            start = rng.uniform(0, args.windows * STRIDE_S - length)
            planted[int(v)] = (q, float(start), float(start + length))
    return queries, planted


def rows(args, rng, queries, planted, first, count):
    """Videos first..first+count: vectors, paths, start_s, end_s."""
    common = np.random.default_rng(1).normal(size=args.dim)  # shared by every clip
    starts = np.arange(args.windows) * STRIDE_S
    ends = starts + CLIP_S
    vectors = np.empty((count * args.windows, args.dim), np.float32)
    for i in range(count):
        scene = unit(common + rng.normal(size=args.dim))
        noise = rng.normal(size=(args.windows, args.dim)) / np.sqrt(args.dim)
        clips = unit(scene + 0.3 * noise)
        if first + i in planted:
            q, a, b = planted[first + i]
            share = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None) / CLIP_S
            clips = unit((1 - share)[:, None] * clips + share[:, None] * (queries[q] + 0.3 * noise))
        vectors[i * args.windows : (i + 1) * args.windows] = clips
    paths = [f"video{v:06d}.mp4" for v in range(first, first + count) for _ in starts]
    return vectors, paths, np.tile(starts, count), np.tile(ends, count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--planted", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from videoprism_keras.apps import Embeddings, VideoIndex

    rng = np.random.default_rng(0)
    queries, planted = plan(args, rng)
    folder = tempfile.mkdtemp(prefix="moments-bench-")
    try:
        index = VideoIndex(folder, ann_threshold=10**12)  # exact: moments use held vectors
        per_commit = max(1, COMMIT // args.windows)
        start = time.perf_counter()
        for first in range(0, args.videos, per_commit):
            count = min(per_commit, args.videos - first)
            vectors, paths, starts, ends = rows(args, rng, queries, planted, first, count)
            index.add(Embeddings(vectors, paths, starts, ends))
        built = time.perf_counter() - start
        start = time.perf_counter()
        index.moments(queries[0], args.planted)
        first_s = time.perf_counter() - start  # reads the vectors, groups the windows
        times, found, within = [], 0, 0
        for _ in range(args.repeats):
            for q, query in enumerate(queries):
                start = time.perf_counter()
                moments = index.moments(query, args.planted)
                times.append(time.perf_counter() - start)
                if _ > 0:
                    continue
                truth = {f"video{v:06d}.mp4": (a, b) for v, (p, a, b) in planted.items()
                         if p == q}  # fmt: skip
                for m in moments:
                    if m.path in truth:
                        found += 1
                        a, b = truth[m.path]
                        within += abs(m.start_s - a) <= STRIDE_S and abs(m.end_s - b) <= STRIDE_S
        # The floor: the one product over the held vectors that every call makes.
        held, product = index.vectors, []
        for query in queries:
            start = time.perf_counter()
            held @ query
            product.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        print(json.dumps({
            "windows": len(index), "videos": args.videos, "dim": args.dim,
            "build_s": round(built, 1), "first_call_s": round(first_s, 2),
            "calls": len(times), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "product_p50_ms": round(float(np.percentile(product, 50)) * 1000, 1),
            "planted": len(planted), "found": found, "edges_within_stride": int(within),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "cpus": os.cpu_count(),
        }))  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
