"""Copies (`VideoIndex.copies`) over a synthetic index with planted copies: time, recall and
precision, exact and through the LanceDB vector index.

The index holds videos of `--windows-per-video` windows (stride 1 s, clip 2 s). Each
video's vectors follow a slow random walk in a 64-d latent space (adjacent windows alike,
as in real video), mapped to `--dim` dimensions, plus a component every vector shares
(real embeddings have one: the reason for centring) and a little isotropic noise,
L2-normalised. Planted copies are further videos: a segment of 10-40 windows of a random
video, with noise added to every vector (a re-encode), and half of them inserted between
windows of an unrelated filler. A planted copy is found when a reported copy joins its
two videos with the offset within one stride; precision is the share of reported copies
that are true ones at the right offset (two copies of overlapping parts of one video are
copies of each other too).

    .venv/bin/python benchmarks/copies.py                           # 100k windows, exact
    .venv/bin/python benchmarks/copies.py --windows 20000           # a quick check
    .venv/bin/python benchmarks/copies.py --ann                     # through the vector index
"""

import argparse
import json
import tempfile
import time

import numpy as np

LATENT, STRIDE, CLIP = 64, 1.0, 2.0


def synthetic(windows: int, per_video: int, dim: int, copies: int, noise: float, seed: int = 0):
    """→ vectors, paths, starts, planted [(a path, b path, offset)]."""
    rng = np.random.default_rng(seed)
    factors = np.linalg.qr(rng.normal(size=(dim, LATENT)))[0].T  # orthonormal directions
    common = rng.normal(size=dim)
    common *= 2.0 / np.linalg.norm(common)

    def video(n):
        walk = np.cumsum(rng.normal(size=(n, LATENT)) * 0.15, 0) + rng.normal(size=LATENT)
        x = walk @ factors + common + 0.05 * rng.normal(size=(n, dim))
        return x.astype(np.float32)

    parts, paths, planted = [], [], []
    originals = max(2, (windows - copies * 30) // per_video)
    for v in range(originals):
        parts.append(video(per_video))
        paths.append(f"/bench/v{v:06d}.mp4")
    for c in range(copies):
        source = int(rng.integers(originals))
        length = int(rng.integers(10, 41))
        start = int(rng.integers(0, per_video - length))
        segment = parts[source][start : start + length]
        segment = segment + noise * np.linalg.norm(segment, axis=1, keepdims=True) * (
            rng.normal(size=segment.shape) / np.sqrt(dim))  # fmt: skip
        name = f"/bench/copy{c:05d}.mp4"
        if c % 2:  # inserted into a filler of unrelated content
            before = int(rng.integers(3, 15))
            segment = np.concatenate([video(before), segment, video(int(rng.integers(3, 15)))])
            planted.append((paths[source], name, float(start - before)))
        else:
            planted.append((paths[source], name, float(start)))
        parts.append(segment.astype(np.float32))
        paths.append(name)
    starts = np.concatenate([np.arange(len(p), dtype=float) * STRIDE for p in parts])
    row_paths = [p for p, part in zip(paths, parts, strict=True) for _ in range(len(part))]
    return np.concatenate(parts), row_paths, starts, planted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100_000, help="windows in the index")
    parser.add_argument("--windows-per-video", type=int, default=100)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--copies", type=int, default=200, help="planted copies")
    parser.add_argument("--noise", type=float, default=0.3, help="copy noise, relative norm")
    parser.add_argument("--ann", action="store_true", help="through the vector index")
    parser.add_argument("--ray", action="store_true", help="as Ray tasks (a local instance)")
    args = parser.parse_args()

    from videoprism_keras.apps import Embeddings, VideoIndex

    vectors, paths, starts, planted = synthetic(args.windows, args.windows_per_video, args.dim,
                                                args.copies, args.noise)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        threshold = 1000 if args.ann else 10**9
        index = VideoIndex(folder + "/ix", ann_threshold=threshold)
        began = time.perf_counter()
        for i in range(0, len(vectors), 50_000):
            part = slice(i, i + 50_000)
            index.add(Embeddings(vectors[part], paths[part], starts[part], starts[part] + CLIP))
        build_s = time.perf_counter() - began
        index.copies(path=paths[0])  # the snapshot read, outside the timing
        began = time.perf_counter()
        groups = index.copies(exact=not args.ann, ray=True if args.ray else None)
        copies_s = time.perf_counter() - began
    found = [(c.a.path, c.b.path, c.offset_s) for g in groups for c in g.copies]
    # Where each video is in its original: t in it is t + offset there (copies of one
    # original are copies of each other too, at the difference of their offsets).
    origin = {b: (a, offset) for a, b, offset in planted}

    def expected(a, b):
        (sa, oa), (sb, ob) = origin.get(a, (a, 0.0)), origin.get(b, (b, 0.0))
        return ob - oa if sa == sb else np.inf

    right = [(a, b) for a, b, off in found if abs(expected(a, b) - off) <= STRIDE]
    hits = {(a, b) for a, b in right if b in origin and origin[b][0] == a}
    print(json.dumps({
        "windows": len(vectors), "dim": args.dim, "planted": len(planted),
        "mode": ("ann" if args.ann else "exact") + ("+ray" if args.ray else ""),
        "write_s": round(build_s, 1), "copies_s": round(copies_s, 1),
        "windows_per_s": round(len(vectors) / copies_s),
        "recall": round(len(hits) / len(planted), 4),
        "precision": round(len(right) / max(len(found), 1), 4), "reported": len(found),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
