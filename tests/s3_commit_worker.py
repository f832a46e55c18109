"""Run by the object-storage serving tests as a separate process (another machine, as far
as the store is concerned): commits `--count` synthetic clips into an existing index, one
per commit, `--interval` seconds apart, and prints a JSON line per commit once it is
committed: {"id": the clip's id, "committed": time.time()}.

    python tests/s3_commit_worker.py URI OPTIONS_JSON --dim 512 [--count 3] [--interval 0.5]
"""

import argparse
import json
import time

import numpy as np

from videoprism_keras.apps.identity import VideoFile
from videoprism_keras.apps.index import store
from videoprism_keras.apps.index.table import ClipTable


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("options", help="LanceDB storage options, as JSON")
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    index = ClipTable(args.uri, storage_options=json.loads(args.options), create=False)
    rng = np.random.default_rng(0)
    for i in range(args.count):
        time.sleep(args.interval)
        files = [VideoFile(f"/written/meanwhile{i}.mp4", 100, 1)]
        vectors = store.normalise(rng.normal(size=(1, args.dim)))
        rows = store.clip_table(files, [None], [None], vectors, [True])
        index.commit(rows)
        print(json.dumps({"id": rows["id"][0].as_py(), "committed": time.time()}), flush=True)


if __name__ == "__main__":
    main()
