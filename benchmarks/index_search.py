"""Video index search: exact numpy scan against the faiss HNSW graph, by collection size.

Why `VideoIndex` switches to faiss at `ANN_THRESHOLD` vectors: the exact scan costs
O(N·D) per query, the graph about O(log N). Vectors are 768-d (VideoPrism-B's
embedding size) and, like real embeddings, clustered (1,000 "scenes") and of low
intrinsic dimension (64 latent factors plus a little isotropic noise), L2-normalised;
queries are fresh draws from the same distribution. For each size: graph build time,
per-query latency (queries one by one, as the CLI issues them), and recall@10 of the
graph against the exact answer.

    .venv/bin/python benchmarks/index_search.py                 # 10k, 100k, 200k, 500k
    .venv/bin/python benchmarks/index_search.py --sizes 20000   # a quick check
"""

import argparse
import time

import numpy as np

from videoprism_keras.apps import Embeddings, VideoIndex

DIM, TOP_K, QUERIES = 768, 10, 200


def clustered(n, rng, centres, factors):
    x = centres[rng.integers(len(centres), size=n)]
    x = x + 0.5 * rng.normal(size=(n, len(factors))) @ factors
    x = x + 0.1 * rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def per_query_ms(index, queries):
    index.search(queries[:1], TOP_K)  # warm-up
    start = time.perf_counter()
    hits = [index.search(q, TOP_K)[0] for q in queries]
    return 1e3 * (time.perf_counter() - start) / len(queries), hits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,200000,500000")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, DIM)) / np.sqrt(DIM)  # unit-norm scenes
    factors = np.linalg.qr(rng.normal(size=(DIM, 64)))[0].T  # 64 orthonormal directions
    print(f"{DIM}-d vectors, {QUERIES} queries one at a time, top-{TOP_K}")
    header = ("vectors", "exact ms/q", "graph build s", "graph ms/q", "speed-up", "recall@10")
    print("{:>9s} {:>11s} {:>14s} {:>11s} {:>9s} {:>10s}".format(*header))
    for size in map(int, args.sizes.split(",")):
        vectors = clustered(size, rng, centres, factors)
        queries = clustered(QUERIES, rng, centres, factors)
        embeddings = Embeddings(vectors, [str(i) for i in range(size)])
        exact = VideoIndex(ann_threshold=10**12).add(embeddings)
        exact_ms, truth = per_query_ms(exact, queries)
        start = time.perf_counter()
        graph = VideoIndex(ann_threshold=1).add(embeddings)  # at the threshold: builds the graph
        build_s = time.perf_counter() - start
        graph_ms, found = per_query_ms(graph, queries)
        recall = np.mean([
            len({h.path for h in a} & {h.path for h in b}) / TOP_K
            for a, b in zip(truth, found, strict=True)
        ])  # fmt: skip
        print(f"{size:9d} {exact_ms:11.2f} {build_s:14.1f} {graph_ms:11.3f} "
              f"{exact_ms / graph_ms:8.0f}x {recall:10.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
