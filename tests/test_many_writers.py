"""Many writers on one index, every clip exactly once: writer processes on the loopback S3
(tests/s3.py) and on a local folder, seeded interleavings with a forced overlap; the real
`videoprism index` with one writer killed mid-run and run again; commits that still
conflict after Lance's retries tried again here; the `id` primary key added to an index
made before it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import many_writers_worker as worker
import numpy as np
import pytest
from videos import write_video

from videoprism_keras.apps.index import VideoIndex, commits, store
from videoprism_keras.apps.index.table import ClipTable

WORKER = Path(__file__).with_name("many_writers_worker.py")
WRITERS = 3
SEEDS = (11, 12, 13, 14, 15)
BATCH = 4  # clips per commit in the CLI's runs
# For each step of a run (a seeded run, the victim's first commits, the writers' ends):
# long past what it takes, so that a hang fails the test and does not stall the session.
WAIT_S = 150
STOP_AFTER = 2  # the victim's commits of its own video before it waits to be killed


def _rows(n, start=0):
    from videoprism_keras.apps.identity import VideoFile

    files = [VideoFile(f"/videos/v{i}.mp4", 100, 1) for i in range(start, start + n)]
    vectors = store.normalise(np.random.default_rng(start).normal(size=(n, 8)))
    return store.clip_table(files, [None] * n, [None] * n, vectors, [True] * n)


def _exactly_once(uri, options, expected: list[str], last: set[str]):
    rows = VideoIndex.load(uri, storage_options=options).to_arrow()
    ids = rows["id"].to_pylist()
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, f"{len(twice)} clips stored more than once: {twice[:5]}"
    assert sorted(ids) == sorted(expected)
    whole = rows["last_clip"].to_pylist()
    assert {i for i, done in zip(ids, whole, strict=True) if done} == last


# ------------------------------------------------------------------ retries here
def test_a_commit_refused_for_a_conflict_is_tried_again_after_jittered_growing_pauses():
    import random

    pauses, outcomes = [], [RuntimeError("lance error: Too many concurrent writers. retry"),
                            OSError("Retryable commit conflict for version 7"), 3]  # fmt: skip

    def write():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # Lance's own runs of the last try

    tries = commits.retried(write, "s3://b/ix", "writing to it", random.Random(0), pauses.append)
    assert tries == 2 + 3  # two refused tries, then one that took Lance three runs
    base = commits.COMMIT_RETRY_BASE_S
    assert base * 0.5 <= pauses[0] <= base * 1.5 and base <= pauses[1] <= base * 3
    assert commits.CommitAttempts().plus(1).plus(tries) == commits.CommitAttempts(2, 6, 5)


def test_a_fault_is_not_retried_and_a_lasting_conflict_is_one_line():
    pauses = []

    def fault():
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        commits.retried(fault, "s3://b/ix", "writing to it", sleep=pauses.append)
    assert pauses == []

    def conflict():
        raise RuntimeError("Commit conflict for version 3: This Update transaction ...")

    with pytest.raises(store.StoreError) as caught:
        commits.retried(conflict, "s3://b/ix", "writing to it", sleep=pauses.append)
    message = str(caught.value)
    assert len(pauses) == commits.COMMIT_RETRIES - 1 and "\n" not in message
    assert message.startswith("s3://b/ix: other writers' commits kept getting in the way")
    assert "this commit was not made" in message and "Run the same command again" in message
    assert max(pauses) <= commits.COMMIT_RETRY_MAX_S * 1.5


# ---------------------------------------------------------------- the primary key
@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_index_made_before_the_primary_key_gets_it_at_its_first_write(where, request,
                                                                         tmp_path):  # fmt: skip
    import lancedb

    options, uri = None, str(tmp_path / "ix")
    if where == "s3":  # the server only for the S3 case
        server = request.getfixturevalue("s3_server")
        options, uri = server.options(), f"s3://{server.bucket()}/ix"
    old = store.schema(8, {"dim": 8, "format": store.FORMAT})
    old = old.set(0, old.field("id").remove_metadata())  # as indexes were written before
    table = lancedb.connect(uri, storage_options=options).create_table(store.TABLE, schema=old)
    table.add(_rows(2).cast(old))
    assert not store.has_primary_key(table.schema)
    # Two writers opened it before either wrote: each one's first write checks again.
    first, second = (ClipTable(uri, storage_options=options, create=False) for _ in range(2))
    assert not store.has_primary_key(first.latest().schema)  # reading changes nothing
    first.commit(_rows(1, start=2))
    second.commit(_rows(2, start=2))  # its key set by the first: not set twice (an error)
    again = ClipTable(uri, storage_options=options, create=False)
    assert store.has_primary_key(again.latest().schema) and again.meta["dim"] == 8
    ids = again.to_arrow()["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 4
    assert (first.attempts.commits, second.attempts.commits) == (1, 1)


def test_a_new_index_two_writers_create_at_once_is_opened_by_the_second(s3_server):
    uri, options = f"s3://{s3_server.bucket()}/ix", s3_server.options()
    # Opened before either wrote, as on two machines: both create the table. (Reads look
    # for the others' commits at once: what is read is not a matter of time.)
    first, second, third = (ClipTable(uri, storage_options=options, meta={"note": n},
                                      refresh_seconds=0)
                            for n in ("first", "second", "third"))  # fmt: skip
    first.commit(_rows(2), settings={"num_frames": 8})
    # Other notes, the same settings: the second writes into the first's table.
    second.commit(_rows(2, start=1), settings={"num_frames": 8})
    assert second.meta["note"] == "first" and len(second) == 3
    # Other settings: refused as for any index, not taken for a damaged one.
    with pytest.raises(ValueError, match="was indexed with num_frames=8; got num_frames=16"):
        third.commit(_rows(1, start=5), settings={"num_frames": 16})
    assert len(ClipTable(uri, storage_options=options, create=False)) == 3  # a fresh look


def test_a_failure_two_writers_recorded_at_once_is_reported_once(tmp_path):
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(tmp_path)
    table = db.create_table(store.FAILURES_TABLE, schema=store.failures_schema())
    table.add(pa.table({"path": ["a.mp4", "b.mp4", "a.mp4"], "reason": ["old", "bad", "new"],
                        "time": [1.0, 2.0, 3.0]}, schema=store.failures_schema()))  # fmt: skip
    assert store.read_failures(db) == [("a.mp4", "new"), ("b.mp4", "bad")]


# ------------------------------------------------------- writer processes, seeded
def _wait_for(paths, processes, log):
    """Until every path exists (within `WAIT_S`), every process running meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while not all(p.exists() for p in paths):
        for process in processes:
            assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the writers never reached {paths[0].name}"
        time.sleep(0.01)


def test_three_writer_processes_store_every_clip_once_on_s3_and_locally(s3_server, tmp_path):
    barrier, local = tmp_path / "barrier", tmp_path / "local-ix"
    barrier.mkdir()
    local.mkdir()
    runs = [{"number": i, "seed": seed, "uri": f"s3://{s3_server.bucket()}/ix",
             "storage_options": s3_server.options(), "overlap": "merge"}
            for i, seed in enumerate(SEEDS)]  # fmt: skip
    runs.append({"number": len(SEEDS), "seed": 16, "uri": str(local), "overlap": "start"})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"writers": WRITERS, "barrier": str(barrier), "runs": runs}))
    log = tmp_path / "writers.log"
    with log.open("w") as errors:
        processes = [subprocess.Popen([sys.executable, str(WORKER), str(plan), str(k)],
                                      stdout=subprocess.PIPE, stderr=errors, text=True)
                     for k in range(WRITERS)]  # fmt: skip
    try:
        for i in range(len(SEEDS)):  # each S3 run within its own deadline
            _wait_for([barrier / f"run{i}.done.{k}" for k in range(WRITERS)], processes, log)
        # The local run: the writers reach their first write while the test holds the
        # folder's lock; none commits (or creates the table) until it is let go.
        name = f"run{len(SEEDS)}"
        _wait_for([barrier / f"{name}.{k}" for k in range(WRITERS)], processes, log)
        with store.locked(local):
            (barrier / f"{name}.go").touch()
            time.sleep(1.0)
            assert not store.has_committed_table(local)
        outputs = [p.communicate(timeout=WAIT_S)[0] for p in processes]
    finally:
        for process in processes:
            process.kill()
    assert all(p.returncode == 0 for p in processes), log.read_text()[-3000:]
    done = [json.loads(line) for out in outputs for line in out.splitlines()]
    for run in runs:
        videos = worker.plan(run["seed"], WRITERS)["videos"]
        last = {i for n, count in videos.items()
                for i in worker.clip_ids({n: count})[-1:]}  # fmt: skip
        _exactly_once(run["uri"], run.get("storage_options"), worker.clip_ids(videos), last)
        mine = [d for d in done if d["run"] == run["number"]]
        assert len(mine) == WRITERS
        if run["overlap"] == "merge":
            # The first merges read one version and inserted one clip: all but one of
            # them took more than one try (Lance ran them again against the new version).
            assert sum(d["attempts"] > d["commits"] for d in mine) >= WRITERS - 1, mine
            assert max(d["most"] for d in mine) >= 2


# --------------------------------------------------- the CLI, one writer killed
@pytest.fixture(scope="module")
def lvt(golden_dir):
    model = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5"]
    sampling = ["--num-frames", "4", "--size", "16", "--clip-seconds", "1", "--batch-size",
                str(BATCH)]  # fmt: skip
    return [*model, *sampling, "--no-progress"]


def _index(sources, uri, flags, lvt, env, log: Path, stop_after=None):
    """`videoprism index` as a command, its stderr into `log` (read once it is done: a pipe
    left unread could fill and stop it); with `stop_after` (commits, video), waiting to be
    killed after that many commits of that video."""
    program = ["-m", "videoprism_keras.cli"]
    if stop_after is not None:
        program = [str(WORKER), "--stop-after", *map(str, stop_after)]
    command = [sys.executable, *program, "index", *map(str, sources), "-o", uri, "--json",
               *flags, *map(str, lvt)]  # fmt: skip
    with log.open("w") as errors:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                env=env)  # fmt: skip


def test_cli_writers_with_one_killed_and_run_again_store_every_clip_once(s3_server, lvt,
                                                                        tmp_path):  # fmt: skip
    import lancedb

    env = {**os.environ, "VIDEOPRISM_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    folder = tmp_path / "videos"
    folder.mkdir()
    seconds = {"a": 3, "b": 4, "c": 5, "long": 24}  # at 10 frames a second
    for name, length in seconds.items():
        write_video(folder / f"{name}.mp4", frames=10 * length, size=(32, 32))
    a, b, c, long = (folder.resolve() / f"{n}.mp4" for n in seconds)
    uri, options = f"s3://{s3_server.bucket()}/ix", s3_server.options()
    flags = s3_server.flags()
    # The one to be killed has a long video of its own; all three share the others.
    victim = [long, a, b]
    logs = [tmp_path / f"writer{k}.log" for k in range(4)]
    processes = [_index(victim, uri, flags, lvt, env, logs[0], (STOP_AFTER, long)),
                 _index([b, c, a], uri, flags, lvt, env, logs[1]),
                 _index([c, a, b], uri, flags, lvt, env, logs[2])]  # fmt: skip
    try:
        # Killed mid-run: it waits once some commits of its own video's clips are made.
        deadline = time.monotonic() + WAIT_S
        while worker.STOPPED not in logs[0].read_text():
            assert processes[0].poll() is None, logs[0].read_text()[-3000:]
            assert time.monotonic() < deadline, "the victim committed nothing of its video"
            time.sleep(0.05)
        processes[0].kill()
        processes[0].wait(timeout=60)
        table = lancedb.connect(uri, storage_options=options).open_table(store.TABLE)
        held = table.count_rows(f"path = {store.sql_string(str(long))}")
        assert STOP_AFTER <= held < seconds["long"]  # what it committed of its video: not all
        # Its command again (as a machine that comes back), while the others still run.
        processes.append(_index(victim, uri, flags, lvt, env, logs[3]))
        outputs = [p.communicate(timeout=WAIT_S)[0] for p in processes[1:]]
    finally:
        for process in processes:
            process.kill()
    for log, process in zip(logs[1:], processes[1:], strict=True):
        assert process.returncode == 0, log.read_text()[-3000:]
    result = json.loads(outputs[-1])
    assert result["added"] > 0 and result["size"] <= sum(seconds.values())
    # A commit per batch, and the deletes of earlier versions of files.
    assert result["commit_attempts"] >= result["commits"] >= result["added"] / BATCH
    rows = VideoIndex.load(uri, storage_options=options).to_arrow()
    ids = rows["id"].to_pylist()
    assert len(ids) == len(set(ids)) == sum(seconds.values())
    paths = rows["path"].to_pylist()
    assert {Path(p).name: paths.count(p) for p in set(paths)} == {
        f"{n}.mp4": s for n, s in seconds.items()}  # fmt: skip
    assert sum(rows["last_clip"].to_pylist()) == len(seconds)  # every file whole
