"""The video index on LanceDB: identity, resume after a kill, concurrent writers, filters,
the previous format, bad input. A tiny random model (or no model): no backend marker."""

import errno
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY
from videos import write_video

import videoprism_keras as vp
from videoprism_keras.apps import Embeddings, VideoIndex
from videoprism_keras.apps.embed_writer import EmbeddingWriter
from videoprism_keras.apps.index import store
from videoprism_keras.apps.index.snapshot import Snapshot
from videoprism_keras.runtime import Encoder

WORKER = Path(__file__).with_name("index_worker.py")
FULL_DISK = Path(__file__).with_name("full_disk.py")
OPTIONS = dict(clip_seconds=1.0, batch_size=2, progress=False)


class CountingEncoder(Encoder):
    clips = 0

    def video(self, pixels, frame_padding_mask=None):
        self.clips += len(pixels)
        return super().video(pixels, frame_padding_mask)


@pytest.fixture(scope="module")
def model():
    return vp.VideoPrismBackbone(**TINY)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Six 2 s videos (two 1 s clips each) in three folders."""
    root = tmp_path_factory.mktemp("library")
    for folder in ("a", "b", "c"):
        for i in range(2):
            (root / folder).mkdir(exist_ok=True)
            write_video(root / folder / f"{folder}{i}.mp4", frames=20, size=(16, 16))
    return root


def _unit(rng, n, dim=16):
    x = rng.normal(size=(n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exactly_once(index, expected):
    ids = index.to_arrow()["id"].to_pylist()
    assert len(ids) == len(set(ids)) == expected
    keys = list(zip(index.paths, index.start_s, index.end_s, strict=True))
    assert len(keys) == len(set(keys))


# ------------------------------------------------------------------------ rows
def test_rows_identity_posters_and_settings(model, library, tmp_path):
    index = VideoIndex(tmp_path / "ix", meta={"preset": "tiny"})
    encoder = CountingEncoder(model)
    added = index.add_videos(model, [library / "a"], encoder=encoder, **OPTIONS)
    assert len(added) == len(index) == 4 and encoder.clips == 4
    rows = index.to_arrow().to_pylist()
    a0 = str((library / "a" / "a0.mp4").resolve())
    first = next(r for r in rows if r["path"] == a0 and r["start_s"] == 0.0)
    stat = os.stat(a0)
    assert (first["size_bytes"], first["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    assert first["end_s"] == 1.0 and first["duration_s"] == pytest.approx(2.0, abs=0.15)
    assert first["poster"][:2] == b"\xff\xd8" and len(first["vector"]) == 16  # a JPEG
    assert sorted(r["last_clip"] for r in rows) == [False, False, True, True]
    assert index.poster(first["id"]) == first["poster"]
    meta = VideoIndex.load(tmp_path / "ix").meta
    assert meta["preset"] == "tiny" and meta["dim"] == 16
    assert meta["backbone"]["hidden_dim"] == 16 and meta["dtype"] == "float32"
    assert {k: meta[k] for k in ("num_frames", "size", "clip_seconds", "stride_seconds")} == {
        "num_frames": 4, "size": 16, "clip_seconds": 1.0, "stride_seconds": 1.0}  # fmt: skip
    # Named again, two ways, nothing is embedded (finished files are not even decoded).
    again = index.add_videos(model, [library / "a", library / "a" / ".." / "a" / "a0.mp4"],
                             encoder=encoder, **OPTIONS)  # fmt: skip
    assert (len(again), again.skipped, encoder.clips, len(index)) == (0, 4, 4, 4)
    refused = {"num_frames": (2, "num_frames=4; got num_frames=2"),
               "clip_seconds": (2.0, "clip_seconds=1.0; got clip_seconds=2.0"),
               "stride_seconds": (0.5, "stride_seconds=1.0; got stride_seconds=0.5")}  # fmt: skip
    for name, (value, match) in refused.items():
        other = {name: value}
        with pytest.raises(ValueError, match=match):
            index.add_videos(model, [library / "b"], **{**OPTIONS, **other})
    assert len(index) == 4


def test_links_folders_named_like_videos_and_replaced_files(model, library, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "x.mp4", frames=20, size=(16, 16))
    (videos / "album.mp4").mkdir()  # a folder named like a video, with a video in it
    write_video(videos / "album.mp4" / "y.mp4", frames=10, size=(16, 16))
    (videos / "same.mp4").symlink_to(videos / "x.mp4")  # the same file, twice
    (videos / "dangling.mp4").symlink_to(videos / "gone.mp4")
    (videos / "loop.mp4").symlink_to(videos / "loop.mp4")
    index = VideoIndex(tmp_path / "ix")
    added = index.add_videos(model, [videos, videos / "x.mp4"], **OPTIONS)
    failed = {Path(path).name: reason for path, reason in added.failures}
    assert set(failed) == {"album.mp4", "dangling.mp4", "loop.mp4"}
    assert "folder" in failed["album.mp4"] and "dangling" in failed["dangling.mp4"]
    assert "loop" in failed["loop.mp4"]
    assert sorted(Path(p).name for p in index.paths) == ["x.mp4", "x.mp4", "y.mp4"]
    # x.mp4 replaced by another video under the same name: embedded again, old rows gone.
    old = set(index.to_arrow()["id"].to_pylist())
    write_video(videos / "x.mp4", frames=30, size=(16, 16), fps=10)
    again = index.add_videos(model, [videos], **OPTIONS)
    assert len(again) == 3 and again.skipped == 1  # x: 3 new clips; y: held
    now = index.to_arrow()
    x_rows = [r for r in now.to_pylist() if r["path"].endswith("x.mp4")]
    assert len(x_rows) == 3 and not ({r["id"] for r in x_rows} & old)
    _exactly_once(index, 4)


# ----------------------------------------------------------------------- search
def test_search_filters_and_per_video(tmp_path):
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 300)
    paths = [f"/library-x/{'cats' if i % 3 else 'dogs'}/v{i % 30}.mp4" for i in range(300)]
    starts = np.arange(300.0) // 30
    index = VideoIndex(tmp_path / "ix").add(Embeddings(vectors, paths, starts, starts + 1))
    query = vectors[7] + 0.01
    hits = index.search(query, top_k=10)[0]
    assert hits[0].path == paths[7] and hits[0].start_s == starts[7]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    late = index.search(query, top_k=10, where="start_s >= 5 AND end_s <= 9")[0]
    assert len(late) == 10 and all(5 <= h.start_s and h.end_s <= 9 for h in late)
    dogs = index.search(query, top_k=10, under="/library-x/dogs")[0]
    assert len(dogs) == 10 and all(h.path.startswith("/library-x/dogs/") for h in dogs)
    assert index.search(query, top_k=5, under="/library-x/do")[0] == []  # a folder, not a prefix
    best = index.search(query, top_k=8, per_video=True)[0]
    assert len({h.path for h in best}) == 8 and best[0].path == paths[7]
    truth = {}
    for i in np.argsort(-(vectors @ (query / np.linalg.norm(query)))):
        truth.setdefault(paths[i], i)
    assert [h.path for h in best] == list(truth)[:8]  # exact: the best clip of each video
    with pytest.raises(ValueError, match="not valid SQL"):
        index.search(query, where="no_such_column > 1")
    # The vector index answers the same questions (with its refine step).
    index.ann_threshold = 256
    index.maintain()
    assert index.stats().has_vector_index
    approx = index.search(query, top_k=8, per_video=True, where="start_s < 8")[0]
    assert len({h.path for h in approx}) == 8 and all(h.start_s < 8 for h in approx)
    assert approx[0].path == paths[7]
    assert all(
        h.path.startswith("/library-x/dogs/")
        for h in index.search(query, under="/library-x/dogs")[0]
    )
    # Held in memory, the same candidates are re-ranked there: the same hits.
    held = VideoIndex.load(tmp_path / "ix", in_memory=True)
    for q in vectors[:12] + 0.01:
        for options in ({}, {"where": "start_s < 8"}, {"under": "/library-x/dogs"}):
            on_disk, in_memory = index.search(q, 5, **options)[0], held.search(q, 5, **options)[0]
            assert [h.id for h in in_memory] == [h.id for h in on_disk] and len(on_disk) == 5
            np.testing.assert_allclose([h.score for h in in_memory],
                                       [h.score for h in on_disk], atol=1e-5)  # fmt: skip
    best = held.search(query, top_k=8, per_video=True, where="start_s < 8")[0]
    assert len({h.path for h in best}) == 8 and best[0].path == paths[7]


def test_a_nan_or_zero_query_is_refused_not_scored(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"v{i}" for i in range(20)]
    index = VideoIndex(tmp_path / "ix").add(Embeddings(_unit(rng, 20), names))
    good = _unit(rng, 1)[0]
    for bad in (np.full(16, np.nan), np.zeros(16), np.where(np.arange(16) == 3, np.inf, good)):
        with pytest.raises(ValueError, match=r"queries\[1\] is all zeros or holds NaN"):
            index.search(np.stack([good, bad]))
    assert len(index.search(good)[0]) == 5


def test_a_held_snapshot_reads_only_what_changed(tmp_path):
    import lancedb

    rng = np.random.default_rng(0)
    index = VideoIndex(tmp_path / "ix")
    index.add(Embeddings(_unit(rng, 120), [f"a{i}" for i in range(120)]))
    first = index.vectors
    index.add(Embeddings(_unit(rng, 10), [f"b{i}" for i in range(10)]))  # new clips
    grown = index.vectors  # room for a quarter more
    index.add(Embeddings(_unit(rng, 10), [f"c{i}" for i in range(10)]))
    added = index.vectors  # only added: into the same memory, after the rows held
    assert len(added) == 140 and np.shares_memory(added, grown)
    np.testing.assert_array_equal(added[:120], first)
    # The snapshots themselves, on a handle of the same table.
    table = lancedb.connect(tmp_path / "ix").open_table(store.TABLE)
    held = Snapshot(table, table.version)
    assert held.read == len(held) == 140
    table.delete("path IN ('a0', 'a1', 'a2', 'a3', 'a4')")  # as a replaced file's are
    changed = _unit(rng, 5)
    index.add(Embeddings(changed, [f"a{i}" for i in range(5)]))  # same clip ids, new rows
    table.checkout_latest()
    rows = Snapshot(table, table.version, previous=held)
    assert rows.read == 5  # 5 of 140 rows are new: read by row id alone
    fresh = Snapshot(table, table.version)
    for name in ("rowids", "ids", "paths", "start_s", "vectors"):
        np.testing.assert_array_equal(getattr(rows, name), getattr(fresh, name))
    np.testing.assert_allclose(rows.vectors[list(rows.ids).index(_clip_id(index, "a3"))],
                               changed[3], atol=1e-6)  # fmt: skip
    table.optimize()  # compaction: new row ids for all
    rows = Snapshot(table, table.version, previous=rows)
    assert not np.isin(rows.rowids, fresh.rowids).any()
    fresh = Snapshot(table, table.version)
    np.testing.assert_array_equal(rows.vectors, fresh.vectors)
    assert sorted(rows.ids) == sorted(fresh.ids) and len(rows.ids) == 140


def _clip_id(index, path):
    return index.search(index.vectors[index.paths.index(path)], 1)[0][0].id


# ---------------------------------------------------------------- old format
def _write_old_format(folder: Path, vectors, items, meta):
    """The previous `VideoIndex.save`: vectors.npy + index.json."""
    folder.mkdir(parents=True)
    np.save(folder / "vectors.npy", vectors)
    (folder / "index.json").write_text(json.dumps({"dim": vectors.shape[1],
                                                   "ann_threshold": 1_000_000, "meta": meta,
                                                   "items": items}))  # fmt: skip


def test_previous_format_is_converted_once_in_place(library, tmp_path, caplog):
    rng = np.random.default_rng(0)
    files = [str(library / "b" / "b0.mp4"), str(library / "b" / "b1.mp4"), "/gone/old.mp4"]
    items = [{"path": p, "start_s": float(s), "end_s": float(s + 1)} for p in files for s in (0, 1)]
    vectors = _unit(rng, len(items))
    meta = {"preset": "tiny", "num_frames": 4, "size": 16, "dtype": "float32"}
    _write_old_format(tmp_path / "old", vectors, items, meta)
    with caplog.at_level("WARNING"):
        index = VideoIndex(tmp_path / "old")
    assert "converted" in caplog.text and "pre-lancedb" in caplog.text
    assert len(index) == 6 and {**meta, "clip_seconds": 1.0}.items() <= index.meta.items()
    assert index.keys() == {(p, float(s), float(s + 1)) for p in files for s in (0, 1)}
    for i in range(6):
        hit = index.search(vectors[i], top_k=1)[0][0]
        assert (hit.path, hit.start_s) == (items[i]["path"], items[i]["start_s"])
    assert not (tmp_path / "old" / "index.json").exists()
    assert (tmp_path / "old" / "pre-lancedb" / "vectors.npy").is_file()  # kept aside
    caplog.clear()
    assert len(VideoIndex.load(tmp_path / "old")) == 6 and "converted" not in caplog.text
    # Its finished files are known: adding them again runs nothing.
    model = vp.VideoPrismBackbone(**TINY)
    added = index.add_videos(model, [library / "b"], num_frames=4, size=(16, 16), **OPTIONS)
    assert (len(added), added.skipped) == (0, 4)


# -------------------------------------------------------------------- bad input
def test_bad_input_is_one_clear_error_and_the_index_stays(model, library, tmp_path):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="not a video index"):
        VideoIndex.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a video index"):
        VideoIndex.load(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="a file, not a video index"):
        VideoIndex(tmp_path / "file")
    half = tmp_path / "half"  # a first commit killed half-way: data, no manifest
    (half / "clips.lance" / "data").mkdir(parents=True)
    (half / "clips.lance" / "data" / "0.lance").write_bytes(b"partial")
    with pytest.raises(ValueError, match="not a video index"):
        VideoIndex.load(half)
    VideoIndex(half).add(Embeddings(_unit(rng, 3), ["a", "b", "c"]))  # discarded, then written
    assert len(VideoIndex.load(half)) == 3
    # Another dimension, another preset's settings: refused, nothing written.
    index = VideoIndex(tmp_path / "ix").add(Embeddings(_unit(rng, 5), list("abcde")))
    version = index.stats().version
    with pytest.raises(ValueError, match="holds 16-d embeddings; got 8-d"):
        index.add(Embeddings(_unit(rng, 2, dim=8), ["f", "g"]))
    with pytest.raises(ValueError, match="queries are 8-d"):
        index.search(_unit(rng, 1, dim=8))
    # A disk that fills up mid-write: one clear error, the last version stays.
    from lancedb.merge import LanceMergeInsertBuilder as builder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    original = builder.execute
    builder.execute = full
    try:
        with pytest.raises(OSError, match=r"is full .* run the same command again") as err:
            index.add(Embeddings(_unit(rng, 2), ["f", "g"]))
        assert err.value.errno == errno.ENOSPC
    finally:
        builder.execute = original
    reopened = VideoIndex.load(tmp_path / "ix")
    assert len(reopened) == 5 and reopened.stats().version == version
    # A damaged table (a data file cut short): a clear error, not a crash.
    for data in (tmp_path / "ix" / "clips.lance" / "data").glob("*.lance"):
        data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ValueError, match="may be damaged"):
        VideoIndex.load(tmp_path / "ix").search(_unit(rng, 1))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="cannot write"):
            VideoIndex(locked / "ix").add(Embeddings(_unit(rng, 1), ["a"]))


def test_a_real_full_disk_and_a_read_only_folder(tmp_path):
    # A real tmpfs of 4 MiB, mounted in the worker's own mount namespace (it goes with
    # the process), filled with committed batches: the write that finds the disk full
    # fails with the index's message, every earlier batch is there once; then the same
    # folder remounted read-only (unwritable, even for root) refuses a write.
    private = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        private[1:1] = ["--user", "--map-root-user"]
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run([*private, sys.executable, str(FULL_DISK), str(mount_point)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode and "unshare:" in done.stderr:
        pytest.skip(f"no private mount namespace here ({done.stderr.strip()}); the "
                    "mocked ENOSPC test above covers the same path")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errno"] == errno.ENOSPC and "is full" in out["error"]
    assert "run the same command again" in out["error"]
    assert out["committed"] > 0 and out["rows"] == out["distinct"] == out["committed"]
    assert out["found"] == "v0.mp4"  # the committed rows are readable and searchable
    assert out["read_only"].startswith("[Errno 13] cannot write to") and "/ix" in out["read_only"]
    assert out["rows_after"] == out["committed"]
    assert not any(line.split()[1] == str(mount_point)
                   for line in Path("/proc/mounts").read_text().splitlines())  # fmt: skip


# ------------------------------------------------------- processes: kill, concurrency
def _worker(index, *sources, delay=0.0, stop_after=None):
    stop = [] if stop_after is None else ["--stop-after", str(stop_after)]
    return subprocess.Popen([sys.executable, str(WORKER), str(index), *map(str, sources),
                             "--delay", str(delay), *stop], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for_rows(index_path, rows, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        if store.has_committed_table(index_path) and len(VideoIndex.load(index_path)) >= rows:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{index_path} did not reach {rows} rows")


def test_killed_runs_resume_exactly_once(library, tmp_path):
    index_path = tmp_path / "ix"
    for sig, rows in ((signal.SIGKILL, 3), (signal.SIGINT, 7)):
        # Each run waits, mid-run, before the model's next clip (its own clips counted).
        held = len(VideoIndex.load(index_path)) if store.has_committed_table(index_path) else 0
        process = _worker(index_path, library, stop_after=rows - held)
        _wait_for_rows(index_path, rows, process)
        process.send_signal(sig)
        process.wait(timeout=60)
        held = len(VideoIndex.load(index_path))
        assert held == rows  # stopped mid-run, every committed batch kept
    done = _worker(index_path, library)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-2000:]
    result = json.loads(out.splitlines()[-1])
    # The model ran only on what the table did not hold.
    assert result["embedded"] == result["added"] == 12 - held and result["skipped"] == held
    _exactly_once(VideoIndex.load(index_path), 12)


def test_concurrent_writers_end_with_the_union(library, tmp_path):
    index_path = tmp_path / "ix"
    first = _worker(index_path, library / "a", library / "b", delay=0.1)
    second = _worker(index_path, library / "b", library / "c", delay=0.1)
    _wait_for_rows(index_path, 2, first)
    seen = []
    while first.poll() is None or second.poll() is None:  # a reader during the writes
        seen.append(len(VideoIndex.load(index_path).search(_unit(np.random.default_rng(0), 1),
                                                           top_k=50)[0]))  # fmt: skip
        time.sleep(0.1)
    for process in (first, second):
        assert process.returncode == 0, process.stderr.read()[-2000:]
    assert seen == sorted(seen) and seen[-1] <= 12  # only ever whole committed versions
    _exactly_once(VideoIndex.load(index_path), 12)


# ---------------------------------------------------------------- embed writer
@pytest.mark.parametrize("suffix", [".npz", ".npy", ".parquet"])
def test_embed_writer_resumes(suffix, tmp_path):
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 10)
    paths = [f"v{i // 2}.mp4" for i in range(10)]
    starts = np.arange(10.0) % 2
    batches = [Embeddings(vectors[i : i + 3], paths[i : i + 3], starts[i : i + 3],
                          starts[i : i + 3] + 1) for i in range(0, 10, 3)]  # fmt: skip
    out = tmp_path / f"e{suffix}"
    settings = {"--kind": "video", "--frames": 4}
    writer = EmbeddingWriter(out, settings)
    for batch in batches[:2]:  # then the process dies: parts on disk, no output
        writer.write(batch)
    assert not out.exists() and len(list(writer.parts.glob("part-*.npz"))) == 2
    # Stored under the flag's old name (a format), said with its current one.
    with pytest.raises(ValueError, match="--num-frames 4, not 8"):
        EmbeddingWriter(out, {**settings, "--frames": 8}, resume=True)
    resumed = EmbeddingWriter(out, settings, resume=True)
    assert resumed.resumed == 6 and resumed.done("v0.mp4", 0.0, 1.0)
    assert not resumed.done("v4.mp4", 1.0, 2.0)
    for batch in batches[2:]:
        resumed.write(batch)
    path, shape = resumed.finish("video")
    assert shape == (10, 16) and not resumed.parts.exists()
    back = Embeddings.load(path)
    np.testing.assert_array_equal(back.vectors, vectors)
    assert list(back.paths) == paths and list(back.start_s) == list(starts)
    # A finished file can be continued too (with new videos).
    more = EmbeddingWriter(out, settings, resume=True)
    assert more.resumed == 10
    more.write(Embeddings(_unit(rng, 1), ["new.mp4"]))
    assert more.finish("video")[1] == (11, 16)
