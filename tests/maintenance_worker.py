"""Run by tests/test_maintenance.py as a separate process, beside others on one index.

    python tests/maintenance_worker.py write INDEX --name A --commits 300 [--keep 2]
        commits `--commits` batches of 10 clips (synthetic vectors, seeded by the name)
        through `IndexWriter`, as `videoprism index` does, whose maintenance runs when due;
        every third file is marked whole by an update after its commit.
    python tests/maintenance_worker.py read INDEX --stop FILE
        reads the index as a long-lived reader does (`VideoIndex.load` once, then the
        latest version at every read: count, ids, an exact search) until FILE exists.

Prints one JSON line: what it did, and every error it met (a reader keeps going).
"""

import argparse
import json
import os
import sys
import time
import zlib

import numpy as np

from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps.identity import VideoFile, clip_id
from videoprism_keras.apps.index import maintenance
from videoprism_keras.apps.index.writer import IndexWriter

ROWS, DIM = 10, 16


def batch(name, commit, rng):
    """One commit's clips: one synthetic file, `ROWS` windows of it."""
    file = VideoFile(f"/videos/{name}/{commit}.mp4", 1000 + commit, 0)
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    starts = [float(i) for i in range(ROWS)]
    return ([file] * ROWS, starts, [s + 1.0 for s in starts], vectors,
            [i == ROWS - 1 for i in range(ROWS)])  # fmt: skip


def write(args):
    index = VideoIndex(args.index)
    if args.keep is not None:
        index.keep_versions_s = args.keep
    writer = IndexWriter(index, {})
    rng = np.random.default_rng(zlib.crc32(args.name.encode()))
    for commit in range(args.commits):
        files, starts, ends, vectors, last = batch(args.name, commit, rng)
        later = commit % 3 == 0  # the file marked whole by an update, as across batches
        writer.commit(files, starts, ends, vectors, [False] * ROWS if later else last,
                      duration_s=[float(ROWS)] * ROWS)  # fmt: skip
        if later:
            writer.mark_complete([clip_id(files[-1].file_id, starts[-1], ends[-1])])
    writer.finish()
    return {"commits": args.commits}


def read(args):
    index = VideoIndex.load(args.index)
    seen, errors, reads, counts = set(), [], 0, []
    rng = np.random.default_rng(0)
    while not os.path.exists(args.stop):
        try:
            ids = index.to_arrow()["id"].to_pylist()
            hits = index.search(rng.normal(size=DIM).astype(np.float32), top_k=3)[0]
            if len(ids) != len(set(ids)):
                errors.append(f"{len(ids) - len(set(ids))} ids twice at a read")
            if not seen <= set(ids):
                errors.append(f"{len(seen - set(ids))} ids lost")
            if len(hits) != min(3, len(ids)):
                errors.append(f"{len(hits)} hits of {len(ids)} clips")
            seen.update(ids)
            counts.append(len(ids))
            reads += 1
        except Exception as err:  # every error is the test's finding
            errors.append(f"{type(err).__name__}: {err}")
        time.sleep(0.01)
    return {"reads": reads, "errors": errors[:5], "error_count": len(errors),
            "counts": [counts[0], counts[-1]] if counts else []}  # fmt: skip


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "read"])
    parser.add_argument("index")
    parser.add_argument("--name", default="A")
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--keep", type=float)
    parser.add_argument("--clock-margin", type=float)
    parser.add_argument("--stop")
    args = parser.parse_args()
    if args.clock_margin is not None:  # one machine: its clock agrees with itself
        maintenance.MAINTAIN_CLOCK_MARGIN_SECONDS = args.clock_margin
    print(json.dumps(write(args) if args.mode == "write" else read(args)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
