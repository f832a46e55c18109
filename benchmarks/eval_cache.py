"""The eval embedding cache (apps/evaluation/cache.py): commits of many small batches, with
and without the index's upkeep, and the memory of reading token features back.

1. `--batches` commits of `--batch` random 768-d vectors (a batch per commit, as
   `EmbeddingCache.videos` commits them), then every row read back by key. Reported: the
   mean commit time over the first and the last 100 commits, the read time and the
   table's fragments at the end; once with the upkeep (the default: a pass every
   `MAINTAIN_EVERY_COMMITS` commits and at the end), once without it.
2. `--clips` clips of (16, `--patches`, 768) float16 token features written, then read
   back in a fresh process: its resident memory before the read, the peak after it, and
   the result's size (the peak above the result is what the read held besides).

    .venv/bin/python benchmarks/eval_cache.py
    .venv/bin/python benchmarks/eval_cache.py --batches 500 --clips 100   # a quick check
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

DIM, FRAMES = 768, 16


def commits(folder, batches, batch, upkeep):
    from videoprism_keras.apps.evaluation import cache

    if not upkeep:  # the same writes, no pass ever due
        cache.MAINTAIN_EVERY_COMMITS = 10**9
    table = cache.EmbeddingCache(folder, "bench", "ds").table("vectors", {})
    rng, times = np.random.default_rng(0), []
    for i in range(batches):
        keys = [f"clip{i * batch + j}" for j in range(batch)]
        began = time.perf_counter()
        table.add(keys, rng.normal(size=(batch, DIM)).astype(np.float32))
        times.append(time.perf_counter() - began)
    if upkeep:
        table.maintain()
    began = time.perf_counter()
    rows = table.read([f"clip{i}" for i in range(batches * batch)])
    read_s = time.perf_counter() - began
    return {"upkeep": upkeep, "commits": batches, "rows": len(rows),
            "first_100_commit_ms": round(1000 * float(np.mean(times[:100])), 1),
            "last_100_commit_ms": round(1000 * float(np.mean(times[-100:])), 1),
            "read_s": round(read_s, 3),
            "fragments": table.latest().stats()["fragment_stats"]["num_fragments"]}  # fmt: skip


def write_features(folder, clips, patches):
    from videoprism_keras.apps.evaluation import cache

    table = cache.EmbeddingCache(folder, "bench", "ds").table("features", {})
    rng = np.random.default_rng(0)
    for i in range(0, clips, 4):
        keys = [f"clip{j}" for j in range(i, min(i + 4, clips))]
        values = rng.normal(size=(len(keys), FRAMES, patches, DIM)).astype(np.float16)
        table.add(keys, values)
    table.maintain()


def read_features(folder, clips):
    from videoprism_keras.apps.evaluation import cache

    table = cache.EmbeddingCache(folder, "bench", "ds").table("features", {})
    keys = [f"clip{i}" for i in range(clips)]
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * resource.getpagesize()
    began = time.perf_counter()
    rows = table.read(keys)
    read_s = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"clips": clips, "shape": list(rows.shape[1:]), "dtype": str(rows.dtype),
            "result_mib": round(rows.nbytes / 2**20), "rss_before_mib": round(before / 2**20),
            "peak_mib": round(peak / 2**20),
            "peak_above_result_mib": round((peak - before - rows.nbytes) / 2**20),
            "read_s": round(read_s, 2)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--patches", type=int, default=64)
    parser.add_argument("--read", help=argparse.SUPPRESS)  # the fresh process of part 2
    args = parser.parse_args()
    if args.read:
        print(json.dumps(read_features(args.read, args.clips)))
        return
    for upkeep in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(commits(folder, args.batches, args.batch, upkeep)), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        write_features(folder, args.clips, args.patches)
        command = [sys.executable, __file__, "--read", folder, "--clips", str(args.clips)]
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        print(child.stdout.strip())


if __name__ == "__main__":
    main()
