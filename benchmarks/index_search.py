"""Video index: LanceDB (`VideoIndex`) beside the previous numpy + faiss HNSW store.

Vectors are 768-d (VideoPrism-B's embedding size) and, like real embeddings, clustered
(1,000 "scenes") and of low intrinsic dimension (64 latent factors plus a little
isotropic noise), L2-normalised; queries are fresh draws from the same distribution.
For each size and store: add throughput (rows/s; LanceDB in commits of 10,000 rows, as
`merge_insert`s on `id`), search latency p50/p95 for one query and for batches of 32,
recall@10 against the exact answer, disk size and the worker's peak RSS above the
generated data. LanceDB's vector index is searched twice: `ann_*` as the one-shot
`search` command does (Lance re-ranks its candidates, reading them from the table) and
`mem_*` as the server does (`in_memory=True`: re-ranked against vectors held in memory).
Each (store, size) runs in its own process, so each peak is its own.

With `--store s3` LanceDB's table is on a real S3 API on loopback (moto's server,
tests/s3.py, started here; the `test` extra): the same figures, read over HTTP, for a
reader on an object store; `disk_mib` is left out, and `exact_1_r0` is `exact_1` with
`refresh_seconds=0` (a look for a new version at every query, as in a local folder) where
the other figures have the object store's default (a look every `INDEX_REFRESH_SECONDS`).

    .venv/bin/python benchmarks/index_search.py                      # 100k and 1M
    .venv/bin/python benchmarks/index_search.py --sizes 20000        # a quick check
    .venv/bin/python benchmarks/index_search.py --sizes 1000000 --stores lance \
        --sweep 64:30,256:30,512:30
    .venv/bin/python benchmarks/index_search.py --sizes 5000 --stores lance --store s3
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import numpy as np

DIM, TOP_K, QUERIES, BATCH, COMMIT = 768, 10, 200, 32, 10_000


def clustered(n, rng, centres, factors):
    x = centres[rng.integers(len(centres), size=n)]
    x = x + 0.5 * rng.normal(size=(n, len(factors))) @ factors
    x = x + 0.1 * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def data(size):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, DIM)) / np.sqrt(DIM)  # unit-norm scenes
    factors = np.linalg.qr(rng.normal(size=(DIM, 64)))[0].T  # 64 orthonormal directions
    vectors = np.empty((size, DIM), np.float32)
    for i in range(0, size, 10_000):  # small pieces: the float64 temporaries stay small
        vectors[i : i + 10_000] = clustered(min(10_000, size - i), rng, centres, factors)
    queries = clustered(QUERIES + BATCH * 10, rng, centres, factors)
    return vectors, queries[:QUERIES], queries[QUERIES:].reshape(10, BATCH, DIM)


def exact_top(vectors, queries):
    sims = queries @ vectors.T
    top = np.argpartition(-sims, TOP_K, axis=1)[:, :TOP_K]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1)


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def latency(search, queries):
    search(queries[0])  # warm-up
    times = []
    for q in queries:
        start = time.perf_counter()
        search(q)
        times.append(1e3 * (time.perf_counter() - start))
    return [round(float(np.percentile(times, p)), 2) for p in (50, 95)]


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / TOP_K for f, t in zip(found, truth, strict=True)]))


def disk_mib(folder):
    total = sum(os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(folder) for name in names)  # fmt: skip
    return round(total / 2**20, 1)


def numpy_faiss(vectors, queries, batches, truth, folder):
    import faiss

    out = {}
    exact = lambda q: exact_top(vectors, np.atleast_2d(q))  # noqa: E731
    top = lambda q: np.argpartition(-(np.atleast_2d(q) @ vectors.T), TOP_K, axis=1)  # noqa: E731
    out["exact_1"], out["exact_32"] = latency(top, queries), latency(top, batches)
    out["exact_recall"] = recall([exact(q)[0] for q in queries], truth)
    start = time.perf_counter()
    graph = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction, graph.hnsw.efSearch = 80, 256
    graph.add(vectors)
    out["add_rows_s"] = round(len(vectors) / (time.perf_counter() - start))
    search = lambda q: graph.search(np.atleast_2d(q), TOP_K)[1]  # noqa: E731
    out["ann_1"], out["ann_32"] = latency(search, queries), latency(search, batches)
    out["ann_recall"] = recall([search(q)[0] for q in queries], truth)
    np.save(os.path.join(folder, "vectors.npy"), vectors)
    faiss.write_index(graph, os.path.join(folder, "hnsw.faiss"))
    return out


def lance(data, queries, batches, truth, folder, sweep, options=None):
    """`folder`: a local folder, or an s3:// URI with LanceDB's storage `options`."""
    import lancedb

    from videoprism_keras.apps import Embeddings, VideoIndex
    from videoprism_keras.apps.index import ANN_REFINE_FACTOR, store

    out = {}
    index = VideoIndex(folder, ann_threshold=10**12, storage_options=options)
    size = len(data[0])
    names = np.arange(size).astype(str).tolist()
    start = time.perf_counter()
    for i in range(0, size, COMMIT):
        index.add(Embeddings(data[0][i : i + COMMIT], names[i : i + COMMIT]))
    out["add_rows_s"] = round(size / (time.perf_counter() - start))
    data.clear()  # the table has them: the input array goes
    start = time.perf_counter()
    index.search(queries[0], TOP_K, exact=True)
    out["exact_first_s"] = round(time.perf_counter() - start, 2)  # reads the vectors
    rows = lambda hits: [int(h.path) for h in hits]  # noqa: E731
    exact = lambda q: index.search(q, TOP_K, exact=True)  # noqa: E731
    out["exact_1"], out["exact_32"] = latency(exact, queries), latency(exact, batches)
    out["exact_recall"] = recall([rows(exact(q)[0]) for q in queries], truth)
    if options is not None:  # an object store: also with a look for a new version per query
        looking = VideoIndex.load(folder, storage_options=options, refresh_seconds=0)
        out["exact_1_r0"] = latency(lambda q: looking.search(q, TOP_K, exact=True), queries)
        looking = None  # its copy of the vectors goes
    # The indexed search does not hold the vectors: a new handle, without the exact
    # search's, from here on.
    index = VideoIndex.load(folder, ann_threshold=1, storage_options=options)
    start = time.perf_counter()
    index.maintain()
    out["ann_build_s"] = round(time.perf_counter() - start, 1)
    # The disk figure is the steady state: what compactions replaced goes after an hour.
    table = lancedb.connect(folder, storage_options=options).open_table(store.TABLE)
    table.optimize(cleanup_older_than=timedelta(0))
    settings = [(None, ANN_REFINE_FACTOR)]  # nprobes: the default share
    if sweep:  # "nprobes:refine,…"; the table row shows the last one
        settings = [tuple(map(int, item.split(":"))) for item in sweep.split(",")]
    for nprobes, refine in settings:
        ann = lambda q, p=nprobes, r=refine: index.search(q, TOP_K, nprobes=p, refine_factor=r)  # noqa: E731
        result = {"ann_1": latency(ann, queries), "ann_32": latency(ann, batches),
                  "ann_recall": recall([rows(ann(q)[0]) for q in queries], truth)}  # fmt: skip
        if sweep:
            print(json.dumps({"nprobes": nprobes, "refine": refine, **result}), flush=True)
        out.update(result)
    # A long-running searcher (the server) holds the vectors and re-ranks in memory.
    held = VideoIndex.load(folder, in_memory=True, storage_options=options)
    start = time.perf_counter()
    held.search(queries[0], TOP_K)
    out["mem_first_s"] = round(time.perf_counter() - start, 2)  # reads the vectors
    for nprobes, refine in settings:
        ann = lambda q, p=nprobes, r=refine: held.search(q, TOP_K, nprobes=p, refine_factor=r)  # noqa: E731
        result = {"mem_1": latency(ann, queries), "mem_32": latency(ann, batches),
                  "mem_recall": recall([rows(ann(q)[0]) for q in queries], truth)}  # fmt: skip
        if sweep:
            print(json.dumps({"in_memory": True, "nprobes": nprobes, "refine": refine,
                              **result}), flush=True)  # fmt: skip
        out.update(result)
    return out


def worker(store, size, sweep, s3=None):
    """`s3`: JSON of {"uri": an empty s3:// prefix, "options": LanceDB's storage options}
    to put LanceDB's table there (None: a local folder)."""
    vectors, queries, batches = data(size)
    truth = np.concatenate([exact_top(vectors, queries[i : i + 20]) for i in range(0, QUERIES, 20)])
    base = rss_mib()
    folder = tempfile.mkdtemp(prefix="index-bench-")
    try:
        if store == "numpy+faiss":
            out = numpy_faiss(vectors, queries, batches, truth, folder)
        else:
            held = [vectors]  # lance() lets go of the vectors once the table has them
            del vectors
            where = json.loads(s3) if s3 else {"uri": folder, "options": None}
            out = lance(held, queries, batches, truth, where["uri"], sweep, where["options"])
        if not s3:
            out["disk_mib"] = disk_mib(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["peak_rss_mib"] = round(rss_mib() - base)
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--stores", default="numpy+faiss,lance")
    parser.add_argument("--sweep", help="LanceDB settings to try: nprobes:refine,… (e.g. "
                        "256:10,256:30,512:30); default the index's own")  # fmt: skip
    parser.add_argument("--store", choices=("local", "s3"), default="local",
                        help="where LanceDB's table is: a local folder, or a loopback S3 "
                        "server (moto, started here)")  # fmt: skip
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--s3", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.sweep, args.s3)
    with loopback_s3(args.store == "s3") as s3:
        table(args, s3)


@contextlib.contextmanager
def loopback_s3(wanted):
    """The tests' loopback S3 server (tests/s3.py) while the benchmark runs, if `wanted`;
    yields it (None otherwise)."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import s3

    server = s3.serve()
    try:
        yield next(server)
    finally:
        server.close()


def table(args, s3):
    print(f"{DIM}-d vectors, {QUERIES} single queries and 10 batches of {BATCH}, top-{TOP_K}; "
          "latency p50/p95 in ms")  # fmt: skip
    columns = ("add_rows_s", "exact_1", "exact_32", "ann_build_s", "ann_1", "ann_32",
               "ann_recall", "mem_1", "mem_32", "mem_recall", "disk_mib",
               "peak_rss_mib") + (("exact_1_r0",) if s3 else ())  # fmt: skip
    print(f"{'store':12s} {'vectors':>8s} " + " ".join(f"{c:>14s}" for c in columns))
    for size in map(int, args.sizes.split(",")):
        for store in args.stores.split(","):
            command = [sys.executable, __file__, "--worker", store, str(size)]
            if s3 is not None and store == "lance":
                where = {"uri": f"s3://{s3.bucket()}/ix", "options": s3.options()}
                command += ["--s3", json.dumps(where)]
            done = subprocess.run(command + (["--sweep", args.sweep] if args.sweep else []),
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode:
                print(f"{store} {size}: failed ({done.returncode})\n{done.stderr[-2000:]}")
                continue
            lines = done.stdout.strip().splitlines()
            for line in lines[:-1]:  # the sweep
                print("   ", line)
            out = json.loads(lines[-1])
            cells = ["/".join(map(str, v)) if isinstance(v, list) else str(v)
                     for v in (out.get(c, "-") for c in columns)]  # fmt: skip
            name = f"{store}@s3" if s3 is not None and store == "lance" else store
            print(f"{name:12s} {size:8d} " + " ".join(f"{c:>14s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
