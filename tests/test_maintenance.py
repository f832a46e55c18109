"""Index maintenance that keeps up: writers committing many small batches keep the table's
fragments and versions bounded (apps/index/maintenance.py), old versions go only once
replaced `keep_versions_s` ago (a version a reader is on stays, however old), readers and
another writer running meanwhile meet no error and lose or double no clip, and
`videoprism index --optimize` maintains an index for a cron (local and loopback S3)."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import call

from videoprism_keras.apps.identity import VideoFile
from videoprism_keras.apps.index import maintenance, store
from videoprism_keras.apps.index.table import ClipTable
from videoprism_keras.apps.index.writer import IndexWriter
from videoprism_keras.constants import (
    INDEX_KEEP_VERSIONS_MIN_SECONDS,
    MAINTAIN_EVERY_COMMITS,
    MAINTAIN_SMALL_FRAGMENTS,
    MAINTAIN_VERSIONS,
)

WORKER = Path(__file__).parent / "maintenance_worker.py"


@pytest.fixture
def same_clock(monkeypatch):
    """One machine: its clock agrees with itself. (Lance reads it a few milliseconds after a
    pass does: the versions whose fate is tested are committed further apart.)"""
    monkeypatch.setattr(maintenance, "MAINTAIN_CLOCK_MARGIN_SECONDS", 0.0)


def _rows(n, start=0, dim=8):
    files = [VideoFile(f"/videos/v{i}.mp4", 100, 1) for i in range(start, start + n)]
    vectors = store.normalise(np.random.default_rng(start).normal(size=(n, dim)))
    return store.clip_table(files, [None] * n, [None] * n, vectors, [True] * n)


def _old_index(index, commits, rows=10):
    """`commits` commits without the writers' upkeep (as an index written before it), the
    last one alone 0.3 s later, then 0.5 s idle."""
    for i in range(commits):
        if i == commits - 1:
            time.sleep(0.3)
        index.commit(_rows(rows, rows * i))
    time.sleep(0.5)


def _commit(writer, start, n=10):
    files = [VideoFile(f"/videos/v{i}.mp4", 100, 1) for i in range(start, start + n)]
    vectors = np.random.default_rng(start).normal(size=(n, 8))
    writer.commit(files, [None] * n, [None] * n, vectors, [True] * n, duration_s=[1.0] * n)


def _versions(uri, **options):
    import lancedb

    table = lancedb.connect(uri, **options).open_table(store.TABLE)
    return [v["version"] for v in table.list_versions()]


def test_cleanup_keeps_a_version_replaced_recently_however_long_ago_it_was_committed():
    upkeep = maintenance.Upkeep()
    # Versions 1-3 committed long ago; 4 replaced 3 ten seconds ago, after an idle hour.
    for seen_at, version in [(0.0, 1), (100.0, 2), (200.0, 3), (5000.0, 4)]:
        upkeep.see(version, seen_at)
    age = upkeep.cleanup_age(keep_s=60.0, now=5010.0)
    cutoff = 5010.0 - age.total_seconds()  # Lance deletes versions committed before it
    margin = maintenance.MAINTAIN_CLOCK_MARGIN_SECONDS
    # Version 1 (replaced at 100) may go; 3, the version readers were on 10 s ago, stays
    # (Lance's own rule, committed more than 60 s ago, would delete it).
    assert cutoff == pytest.approx(100.0 - margin) and 0.0 < cutoff <= 200.0
    # Nothing replaced long enough ago: nothing is deleted.
    recent = maintenance.Upkeep()
    recent.see(1, 0.0)
    recent.see(2, 5000.0)
    assert recent.cleanup_age(keep_s=60.0, now=5010.0) is None


def test_a_look_for_a_pass_reads_the_latest_version_now_not_as_reads_last_saw_it(s3_server):
    uri, options = f"s3://{s3_server.bucket()}/ix", s3_server.options()
    ClipTable(uri, storage_options=options).commit(_rows(5))
    index = ClipTable(uri, storage_options=options, create=False, refresh_seconds=3600.0)
    other = ClipTable(uri, storage_options=options, create=False)
    other.commit(_rows(5, start=5))
    assert len(index) == 5 and index.version < other.version  # reads lag, within the bound
    index.maintain(finishing=False)  # nothing due, but looked for now
    assert index.version == other.version  # what `seen` records with the look's time


def test_after_an_idle_while_a_pass_keeps_the_version_readers_are_on(tmp_path, same_clock):
    import lancedb

    uri = str(tmp_path / "ix")
    index = ClipTable(uri)
    for i in range(6):
        index.commit(_rows(5, 5 * i))
        time.sleep(0.3)
    index.keep_versions_s = 1.0
    time.sleep(1.5)  # idle: the latest version was committed longer ago than kept
    on = index.version
    assert index.maintain(force=True)  # compaction, then cleanup
    assert index.stats().fragments == 1
    kept = _versions(uri)
    assert on in kept and min(kept) >= on - 1  # the older ones went
    reader = lancedb.connect(uri).open_table(store.TABLE)
    reader.checkout(on)  # as a reader still on it opens it (copies' workers do)
    assert reader.count_rows() == 30
    # Lance's own rule (versions committed over a second ago) would have deleted it.
    lancedb.connect(uri).open_table(store.TABLE).optimize(cleanup_older_than=timedelta(seconds=1))
    with pytest.raises(Exception, match="no longer exists"):
        lancedb.connect(uri).open_table(store.TABLE).checkout(on)


def test_many_small_commits_keep_fragments_and_versions_bounded(tmp_path, same_clock):
    index = ClipTable(str(tmp_path / "ix"))
    index.keep_versions_s = 1e-3  # no reader here: versions go as soon as replaced
    writer = IndexWriter(index, {})
    commits, most = 400, {"fragments": 0, "versions": 0}
    for c in range(commits):
        _commit(writer, 10 * c)
        if c % 20 == 19:
            stats = index.stats()
            most = {k: max(most[k], getattr(stats, k)) for k in most}
    writer.finish()
    stats = index.stats()
    assert stats.rows == 10 * commits
    assert len(set(index.to_arrow()["id"].to_pylist())) == 10 * commits
    # A pass runs at most MAINTAIN_EVERY_COMMITS commits after fragments pass their bound;
    # it keeps the versions since the previous look (the last one replaced by then).
    assert most["fragments"] <= MAINTAIN_SMALL_FRAGMENTS + MAINTAIN_EVERY_COMMITS + 1
    bound = MAINTAIN_SMALL_FRAGMENTS + 3 * MAINTAIN_EVERY_COMMITS + 4
    assert most["versions"] <= bound < MAINTAIN_VERSIONS < commits
    assert stats.fragments == 1 and stats.versions <= bound  # the long run's end: compacted


def _worker(*args, env=None):
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _result(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.splitlines()[-1])


# (store, writer A's commits, writer B's): on S3 (slower commits) enough for passes to run
# while both write (past 64 small fragments), with no lock between their passes there.
STORES = [("local", 150, 90), ("s3", 50, 30)]


@pytest.mark.parametrize("where, a, b", STORES, ids=[s[0] for s in STORES])
def test_readers_and_another_writer_meanwhile_see_no_error_and_lose_nothing(
    tmp_path, request, where, a, b
):
    env = {}
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        uri, env = f"s3://{server.bucket()}/ix", server.environment()
        first = ClipTable(uri, storage_options=server.options())
    else:
        uri = str(tmp_path / "ix")
        first = ClipTable(uri)
    first.commit(_rows(10, 10_000, dim=16))  # the table exists before they start
    stop = tmp_path / "stop"
    reader = _worker("read", uri, "--stop", stop, env=env)
    writers = [_worker("write", uri, "--name", name, "--commits", commits, "--keep", 2,
                       "--clock-margin", 0.5, env=env)
               for name, commits in (("A", a), ("B", b))]  # fmt: skip
    try:
        try:
            done = [_result(w) for w in writers]
        finally:
            stop.touch()
        read = _result(reader)
    finally:  # a failure or a timeout leaves no process behind (done ones: nothing to do)
        for process in [reader, *writers]:
            process.kill()
            process.wait(timeout=60)
    assert [d["commits"] for d in done] == [a, b]
    assert read["error_count"] == 0, read["errors"]
    assert read["reads"] >= 5 and read["counts"][-1] >= read["counts"][0]
    index = ClipTable(uri, storage_options=first.storage_options, create=False)
    rows = index.to_arrow()
    ids = rows["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 10 + 10 * (a + b)  # every clip once
    assert sum(rows["last_clip"].to_pylist()) == 10 + a + b  # every file whole, updates too
    stats = index.stats()
    assert stats.fragments <= 2  # each writer's long run ends with a compaction
    # Old versions went while they wrote (how many: how long the run lasted past the 2.5 s
    # kept; the bound itself is the single writer's test's).
    assert stats.versions < stats.version


def _optimize(uri, keep_s, **options):
    """What `index --optimize` does, with a retention below the CLI's floor (no reader
    here): the pass, and the versions before and after."""
    index = ClipTable(uri, create=False, **options)
    index.keep_versions_s = keep_s
    before = index.stats()
    assert index.maintain(force=True)
    return before, index.stats()


def test_index_optimize_compacts_and_deletes_old_versions(tmp_path, capsys, same_clock):
    uri = str(tmp_path / "ix")
    _old_index(ClipTable(uri), 40)
    keep = INDEX_KEEP_VERSIONS_MIN_SECONDS
    out = call(capsys, "index", "--optimize", uri, "--keep-versions", f"{keep:g}", "--json")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["rows"] == 400 and done["fragments"] == [40, 1]
    # Every version was replaced within the retention: all kept, the pass's added.
    assert done["versions"][1] > done["versions"][0] >= 40
    assert done["keep_versions_s"] == keep
    before, after = _optimize(uri, 0.2)  # no reader here: versions go once replaced
    # Kept: the last commit's version and the one it replaced, and the passes'.
    assert (before.fragments, after.fragments) == (1, 1) and after.versions <= 4
    again = call(capsys, "index", "--optimize", uri)  # the default keep: nothing more to do
    assert again.returncode == 0 and again.stdout.startswith(f"optimized {uri}: 1 → 1 fragments")
    assert len(ClipTable(uri, create=False)) == 400


@pytest.mark.parametrize("args, expected", [
    (["--optimize", "{missing}"], "--optimize {missing} is not a video index (no such folder)"),
    (["--optimize", "{uri}", "{uri}"], "--optimize maintains an index and adds no videos; got "
                                       "SOURCES"),
    (["--optimize", "{uri}", "-o", "{uri}"], "got -o"),
    (["--optimize", "{uri}", "--shots"], "got --shots"),
    (["--optimize", "{uri}", "--keep-versions", "0"], "argument --keep-versions: expected a "
                                                      "positive number; got '0'"),
    (["--optimize", "{uri}", "--keep-versions", "0.001"], "--keep-versions 0.001: a version is "
                                                          "kept at least 60 s"),
    (["{uri}", "-o", "{uri}", "--keep-versions", "59"], "--keep-versions 59: a version"),
    (["--optimize", "{uri}", "--batch-size", "8"], "got --batch-size"),
    (["--optimize", "{uri}", "--preset", "x"], "got --preset"),
    (["--optimize", "{uri}", "--num-frames", "4"], "got --num-frames"),
    (["--optimize", "{uri}", "--workers", "2"], "got --workers"),
    (["--optimize", "{uri}", "--strict"], "got --strict"),
    (["{uri}"], "give -o INDEX: index SOURCES"),
    (["-o", "{uri}"], "give SOURCES: index SOURCES"),
])  # fmt: skip
def test_index_optimize_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, expected):
    uri = str(tmp_path / "ix")
    ClipTable(uri).commit(_rows(3))
    before = _versions(uri)
    names = {"uri": uri, "missing": str(tmp_path / "none")}
    out = call(capsys, "index", *[a.format(**names) for a in args])
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert expected.format(**names) in out.stderr
    assert _versions(uri) == before  # nothing written


def test_index_optimize_on_s3(s3_server, capsys, same_clock):
    bucket = s3_server.bucket()
    uri = f"s3://{bucket}/ix"
    _old_index(ClipTable(uri, storage_options=s3_server.options()), 12, rows=5)
    out = call(capsys, "index", "--optimize", uri, *s3_server.flags(), "--json")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["rows"] == 60 and done["fragments"] == [12, 1]
    assert done["versions"][1] > done["versions"][0] >= 12  # none replaced long enough ago
    _, after = _optimize(uri, 0.2, storage_options=s3_server.options())
    assert after.rows == 60 and after.fragments == 1 and after.versions <= 4
    wrong = call(capsys, "index", "--optimize", f"s3://{bucket}-none/ix", *s3_server.flags())
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert f"s3://{bucket}-none/ix" in wrong.stderr
