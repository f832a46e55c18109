"""Run by tests/test_many_writers.py as one of several writer processes on one index: for
each run of a plan (an index and a seed), writes its share of the seed's videos' clips
through `VideoIndex.writer()` (`IndexWriter`: prepare, what the index holds skipped, commits
of a few clips, the files' last clips, `mark_complete`, `finish`), with synthetic vectors
(the same for a clip in every writer, as one model would give) and no model. Prints one
JSON line per run: {"run": i, "commits": …, "attempts": …, "most": …}.

Overlap, so that the test sees what it tests: before its first merge of a run (its
latest version read), a writer waits until every writer is there (`"overlap": "merge"`),
and all first merges insert the seed's first clip; or, with `"overlap": "start"`, before
its first write, until the test says go (it holds a local folder's lock meanwhile).

    python tests/many_writers_worker.py PLAN.json WRITER

Each writer touches `run<i>.done.<writer>` in the plan's barrier folder once run i is done
(the test gives each run its own deadline).

With `--stop-after`, it is the `videoprism` command instead, unchanged but that after N
commits holding clips of VIDEO it waits (every earlier commit made) for the test to kill
it, and says so on stderr:

    python tests/many_writers_worker.py --stop-after N VIDEO index SOURCES -o INDEX ...
"""

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np

from videoprism_keras.apps.embedding import item_key
from videoprism_keras.apps.identity import VideoFile, clip_id
from videoprism_keras.apps.index import VideoIndex

BARRIER_S = 120  # a writer that never comes fails the run, not the whole session
DIM = 8


def plan(seed: int, writers: int) -> dict:
    """The seed's videos (name → clips, of 1 s) and each writer's share, in its order,
    with its batch sizes and pauses: every video in at least two writers' shares, the
    first in every share."""
    rng = random.Random(seed)
    videos = {f"s{seed}-v{i}.mp4": rng.randint(1, 5) for i in range(6)}
    names = list(videos)
    shares = [[names[0]] for _ in range(writers)]
    for name in names[1:]:
        for k in rng.sample(range(writers), rng.randint(2, writers)):
            shares[k].append(name)
    for share in shares:
        rest = share[1:]
        rng.shuffle(rest)
        share[1:] = rest
    batch = [rng.randint(2, 4) for _ in range(writers)]
    pause = [[rng.uniform(0, 0.03) for _ in range(64)] for _ in range(writers)]
    return {"videos": videos, "shares": shares, "batch": batch, "pause": pause}


def video_file(name: str) -> VideoFile:
    return VideoFile(f"/videos/{name}", 1000 + len(name), 1)  # no such file: no probing


def clip_ids(videos: dict) -> list[str]:
    """Every clip's id: what the index must hold once, each."""
    return [clip_id(video_file(n).file_id, float(s), float(s + 1))
            for n, count in videos.items() for s in range(count)]  # fmt: skip


def _vector(name: str, start: int) -> np.ndarray:
    return np.random.default_rng([sum(name.encode()), len(name), start]).normal(size=DIM)


class Barrier:
    def __init__(self, folder: Path, writer: int, writers: int):
        self.folder, self.writer, self.writers = folder, writer, writers

    def wait(self, name: str, go: bool = False) -> None:
        """Until every writer (and, with `go`, the test) reached `name`."""
        (self.folder / f"{name}.{self.writer}").touch()
        needed = [self.folder / f"{name}.{k}" for k in range(self.writers)]
        needed += [self.folder / f"{name}.go"] if go else []
        deadline = time.monotonic() + BARRIER_S
        while not all(path.exists() for path in needed):
            if time.monotonic() > deadline:
                sys.exit(f"writer {self.writer}: the others never reached {name}")
            time.sleep(0.005)


def hold_first_merge(barrier: Barrier):
    """Makes the next `merge_insert` of any table wait at `barrier` (after its commit read
    the latest version): returns the function that arms it for a run's name."""
    from lancedb.table import LanceTable

    original = LanceTable.merge_insert
    armed = []

    def merge_insert(self, on):
        if armed:
            barrier.wait(armed.pop())
        return original(self, on)

    LanceTable.merge_insert = merge_insert
    return armed.append


def write_run(run: dict, writer: int, writers: int, barrier: Barrier, arm) -> dict:
    share = plan(run["seed"], writers)
    options = run.get("storage_options")
    index = VideoIndex(run["uri"], storage_options=options)
    clips = index.writer()
    files = [video_file(name) for name in share["shares"][writer]]
    _, todo = clips.prepare(files)
    name = f"run{run['number']}"
    if run["overlap"] == "merge":
        arm(name)
    else:
        barrier.wait(name, go=True)
    pauses = iter(share["pause"][writer])
    for file in todo:
        count = share["videos"][Path(file.path).name]
        keys = clips.held([file]).get(file.file_id, (set(), False))[0]
        starts = [s for s in range(count) if item_key(file.path, s, s + 1) not in keys]
        size = share["batch"][writer]
        for i in range(0, len(starts), size):
            batch = starts[i : i + size]
            vectors = np.stack([_vector(file.path, s) for s in batch])
            last = [s == count - 1 for s in batch]
            clips.commit([file] * len(batch), batch, [s + 1 for s in batch], vectors, last,
                         duration_s=[count] * len(batch))  # fmt: skip
            time.sleep(next(pauses, 0.0))
    # Every file whole again (as the Ray driver marks files): updates racing each other.
    last = [clip_id(f.file_id, float(share["videos"][Path(f.path).name] - 1),
                    float(share["videos"][Path(f.path).name])) for f in files]  # fmt: skip
    clips.mark_complete(last)
    clips.finish()
    done = index.attempts
    return {"run": run["number"], "commits": done.commits, "attempts": done.attempts,
            "most": done.most}  # fmt: skip


STOPPED = "waiting to be killed after"  # the line the test waits for


def stop_after(commits: int, video: str, argv: list[str]) -> int:
    """The CLI, stopped (see the module's docstring)."""
    from killable import wait_to_be_killed

    from videoprism_keras import cli
    from videoprism_keras.apps.index import IndexWriter

    video, held, commit = os.path.realpath(video), [0], IndexWriter.commit

    def counted(self, files, *args, **kwargs):
        if held[0] >= commits:
            print(f"{STOPPED} {held[0]} commits of {video}", file=sys.stderr, flush=True)
            wait_to_be_killed()
        commit(self, files, *args, **kwargs)
        held[0] += any(os.path.realpath(f.path) == video for f in files)

    IndexWriter.commit = counted
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as from a terminal
    return cli.main(argv)


def main():
    if sys.argv[1] == "--stop-after":
        sys.exit(stop_after(int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    plan_file, writer = Path(sys.argv[1]), int(sys.argv[2])
    runs = json.loads(plan_file.read_text())
    writers = runs["writers"]
    barrier = Barrier(Path(runs["barrier"]), writer, writers)
    arm = hold_first_merge(barrier)
    for run in runs["runs"]:
        print(json.dumps(write_run(run, writer, writers, barrier, arm)), flush=True)
        (barrier.folder / f"run{run['number']}.done.{writer}").touch()


if __name__ == "__main__":
    main()
