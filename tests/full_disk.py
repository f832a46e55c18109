"""Run by the index tests inside a private mount namespace (`unshare --mount`, or with
`--user --map-root-user` when not root): the index lives on a real tmpfs of a few MiB.

Fills it with committed batches until the disk is full, then checks, in this process and
in a fresh reader, that the write failed with the index's one-line message and that every
batch committed before it is there once; then remounts the tmpfs read-only and checks that
a write is refused naming the folder. Prints a JSON summary for the test.

    unshare --mount --propagation private python tests/full_disk.py MOUNT_POINT
"""

import errno
import json
import subprocess
import sys

import numpy as np

from videoprism_keras.apps import Embeddings, VideoIndex

BATCH, DIM = 200, 768  # a batch is ~0.6 MiB of vectors: a few fit, then the disk is full


def batch(rng, start):
    vectors = rng.normal(size=(BATCH, DIM)).astype(np.float32)
    return Embeddings(vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                      [f"v{i}.mp4" for i in range(start, start + BATCH)])  # fmt: skip


def main():
    mount_point = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mount_point], check=True)
    rng = np.random.default_rng(0)
    uri = f"{mount_point}/ix"
    index, committed, error = VideoIndex(uri), 0, None
    for _ in range(100):
        try:
            index.add(batch(rng, committed))
        except OSError as err:
            error = err
            break
        committed += BATCH
    reader = VideoIndex.load(uri)
    out = {"committed": committed, "errno": getattr(error, "errno", None), "error": str(error),
           "rows": len(reader), "distinct": len(set(reader.paths)),
           "found": reader.search(reader.vectors[:1], 1)[0][0].path}  # fmt: skip
    subprocess.run(["mount", "-o", "remount,ro", mount_point], check=True)
    try:
        VideoIndex.load(uri).add(batch(rng, 10**6))
        out["read_only"] = "written"
    except PermissionError as err:
        out["read_only"] = str(err)
    out["rows_after"] = len(VideoIndex.load(uri))
    print(json.dumps(out))
    return 0 if out["errno"] == errno.ENOSPC else 1


if __name__ == "__main__":
    sys.exit(main())
