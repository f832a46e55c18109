"""Index maintenance that keeps up: 10,000 commits of 10 clips through `IndexWriter` (the
write path of `videoprism index` and the Ray driver, whose maintenance runs when due),
then the table against a freshly built one of the same rows.

Reported: commits/s, the maintenance passes the writer ran and the time in them (the
looks between included); the table's fragments and versions (manifest files), the most
seen while writing (sampled every `--sample` commits) and at the end, with the disk used
(replaced files stay while their versions are kept); then search latency p50/p95 on both
tables, taken in turn, and again after `index --optimize` of the written one. `one_shot`
opens the index and searches once, as `videoprism search` does (it reads every vector:
fragments cost here); `held` searches again and again on one handle, as `serve` does;
`filtered` adds a `--where` (Lance's scan with a filter). Vectors are random 768-d unit
vectors: the timings, not the hits, are compared. Retention (`--keep-versions`) is the
writer's setting; versions kept ≈ commits in the last `keep +
MAINTAIN_CLOCK_MARGIN_SECONDS` seconds plus those since the last pass.

    .venv/bin/python benchmarks/maintenance.py                       # 10,000 commits
    .venv/bin/python benchmarks/maintenance.py --commits 1000        # a quick check
    .venv/bin/python benchmarks/maintenance.py --ann-threshold 50000 # the vector index path
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, TOP_K = 768, 10


def unit(rng, n):
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def files(commit, rows):
    from videoprism_keras.apps.identity import VideoFile

    return [VideoFile(f"/videos/{commit // 1000}/{commit}.mp4", 1000 + commit, 0)] * rows


def layout(folder):
    """(fragments, versions) of the clips table: its manifest files counted on disk."""
    import lancedb

    table = lancedb.connect(folder).open_table("clips")
    versions = len(list((Path(folder) / "clips.lance" / "_versions").glob("*.manifest")))
    return table.stats()["fragment_stats"]["num_fragments"], versions


def disk_mib(folder):
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(folder) for name in names)  # fmt: skip
    return round(total / 2**20, 1)


def percentiles(times):
    return [round(float(np.percentile(times, p)), 2) for p in (50, 95)]


def latency(folders, queries, ann_threshold, repeats):
    """Search latencies (ms p50, p95) on the indexes at `folders` (name → folder), taken in
    turn, so that the machine's slower and faster moments fall on each alike."""
    from videoprism_keras.apps import VideoIndex

    times = {name: {"one_shot": [], "held": [], "filtered": []} for name in folders}
    for q in queries[:repeats]:
        for name, folder in folders.items():
            start = time.perf_counter()
            VideoIndex.load(folder, ann_threshold=ann_threshold).search(q, TOP_K)
            times[name]["one_shot"].append(1e3 * (time.perf_counter() - start))
    held = {name: VideoIndex.load(f, ann_threshold=ann_threshold) for name, f in folders.items()}
    for index in held.values():
        index.search(queries[0], TOP_K)  # the held vectors read once
    for q in queries:
        for name, index in held.items():
            start = time.perf_counter()
            index.search(q, TOP_K)
            times[name]["held"].append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            index.search(q, TOP_K, where="start_s >= 0")
            times[name]["filtered"].append(1e3 * (time.perf_counter() - start))
    return {name: {kind: percentiles(t) for kind, t in kinds.items()}
            for name, kinds in times.items()}  # fmt: skip


def written(folder, args, rng):
    """The table written in `args.commits` commits of `args.rows` clips."""
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.apps.index.writer import IndexWriter

    index = VideoIndex(folder, ann_threshold=args.ann_threshold)
    if args.keep_versions is not None:
        index.keep_versions_s = args.keep_versions
    writer = IndexWriter(index, {})
    passes, maintain = [], index.maintain

    def timed(**how):  # the writer's maintenance, timed: passes and the looks between
        start = time.perf_counter()
        ran = maintain(**how)
        passes.append((ran, time.perf_counter() - start))
        return ran

    index.maintain = timed
    starts = [float(i) for i in range(args.rows)]
    ends, last = [s + 1.0 for s in starts], [i == args.rows - 1 for i in range(args.rows)]
    most, start = [0, 0], time.perf_counter()
    for commit in range(args.commits):
        writer.commit(files(commit, args.rows), starts, ends, unit(rng, args.rows), last,
                      duration_s=[float(args.rows)] * args.rows)  # fmt: skip
        if commit % args.sample == args.sample - 1:
            most = [max(m, n) for m, n in zip(most, layout(folder), strict=True)]
    writer.finish()
    seconds = time.perf_counter() - start
    fragments, versions = layout(folder)
    return {"commits_s": round(args.commits / seconds, 1), "write_s": round(seconds, 1),
            "most_fragments": most[0], "most_versions": most[1], "fragments": fragments,
            "versions": versions, "disk_mib": disk_mib(folder),
            "passes": sum(ran for ran, _ in passes),
            "maintenance_s": round(sum(t for _, t in passes), 1)}  # fmt: skip


def fresh(source, folder, ann_threshold):
    """The same rows in one table built at once (commits of 10,000 rows), maintained."""
    from videoprism_keras.apps.index.table import ClipTable

    rows = ClipTable(source, create=False).to_arrow()
    index = ClipTable(folder, ann_threshold=ann_threshold)
    for i in range(0, len(rows), 10_000):
        index.commit(rows.slice(i, 10_000))
    index.maintain(force=True)
    fragments, versions = layout(folder)
    return {"fragments": fragments, "versions": versions, "disk_mib": disk_mib(folder)}


def main():
    from videoprism_keras.constants import ANN_THRESHOLD, INDEX_KEEP_VERSIONS_SECONDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10, help="clips per commit")
    parser.add_argument("--keep-versions", type=float, default=30.0,
                        help=f"the writer's retention, seconds (the package's default: "
                             f"{INDEX_KEEP_VERSIONS_SECONDS:g})")  # fmt: skip
    parser.add_argument("--ann-threshold", type=int, default=ANN_THRESHOLD)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30, help="one-shot searches timed")
    parser.add_argument("--sample", type=int, default=250, help="commits between layouts")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    queries = unit(rng, args.queries)
    root = Path(tempfile.mkdtemp(prefix="videoprism-maintenance-"))
    try:
        out = {"commits": args.commits, "rows": args.commits * args.rows,
               "keep_versions_s": args.keep_versions,
               "ann_threshold": args.ann_threshold}  # fmt: skip
        out["written"] = written(str(root / "written"), args, rng)
        out["fresh"] = fresh(str(root / "written"), str(root / "fresh"), args.ann_threshold)
        folders = {"written": str(root / "written"), "fresh": str(root / "fresh")}
        for name, ms in latency(folders, queries, args.ann_threshold, args.repeats).items():
            out[name]["search_ms"] = ms
        from videoprism_keras.apps.index.table import ClipTable

        table = ClipTable(folders["written"], create=False, ann_threshold=args.ann_threshold)
        table.keep_versions_s = args.keep_versions
        start = time.perf_counter()
        table.maintain(force=True)  # what `index --optimize` does
        optimized = dict(zip(("fragments", "versions"), layout(folders["written"]),
                             strict=True))  # fmt: skip
        optimized["optimize_s"] = round(time.perf_counter() - start, 2)
        again = latency(folders, queries, args.ann_threshold, args.repeats)
        optimized["search_ms"], optimized["fresh_search_ms"] = again["written"], again["fresh"]
        out["optimized"] = optimized
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
