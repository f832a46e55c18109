"""Copies in an index (`VideoIndex.copies`, `videoprism copies`): planted copies of generated
videos (re-encoded, rescaled, cropped, trimmed, inserted) found with their offsets and no
false pairs; `path=`, Ray and the vector index give the same copies; whole-video indexes,
empty ones and bad arguments answered clearly."""

import json
import logging
import warnings

import numpy as np
import pytest
from cli_helpers import call
from copy_videos import collection

import videoprism_keras as vp
from videoprism_keras.apps import Embeddings, VideoIndex
from videoprism_keras.apps.copies import CopyGroup

CLIP, STRIDE = 2.0, 1.0
SAMPLING = dict(num_frames=8, size=32)  # the small model tells the sources apart at 32 px


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("copies") / "videos"
    return folder, collection(folder)


@pytest.fixture(scope="module")
def index(planted, golden_dir, tmp_path_factory):
    model = vp.VideoPrismBackbone.from_preset(str(golden_dir / "lvt_small.ckpt.npz"),
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    uri = tmp_path_factory.mktemp("copies_index") / "ix"
    return VideoIndex.from_videos(model, planted[0], CLIP, STRIDE, uri=uri, batch_size=8,
                                  progress=False, **SAMPLING)  # fmt: skip


@pytest.fixture(scope="module")
def found(index):
    return index.copies()


def _pairs(groups):
    return {(c.a.path, c.b.path) for g in groups for c in g.copies}


def test_planted_copies_found_with_their_offsets_and_no_false_pairs(planted, found):
    _, truth = planted
    assert _pairs(found) == {(p.a, p.b) for p in truth}
    copies = [c for g in found for c in g.copies]
    for p in truth:
        between = [c for c in copies if (c.a.path, c.b.path) == (p.a, p.b)]
        best = min(between, key=lambda c: abs(c.offset_s - p.offset_s))
        if p.kind == "crop":  # found, and reported (docs/copies.md): the small model
            assert abs(best.offset_s - p.offset_s) <= 2 * STRIDE  # barely tells `life`'s
            continue  # seconds apart once cropped
        assert abs(best.offset_s - p.offset_s) <= STRIDE, (p, best)
        # The spans: within one window's overhang of the truth, the same length both sides.
        assert abs(best.a.start_s - p.a_start_s) <= CLIP and abs(best.a.end_s - p.a_end_s) <= CLIP
        assert best.b.end_s - best.b.start_s == pytest.approx(best.a.end_s - best.a.start_s)
        assert best.a.start_s == pytest.approx(best.b.start_s + best.offset_s)
        assert best.score >= 0.9


def test_a_video_and_all_its_copies_are_one_group(planted, found):
    _, truth = planted
    host = next(p.a for p in truth if p.kind == "inserted")
    group = next(g for g in found if host in g.paths)
    assert sorted(group.paths) == sorted({host} | {p.b for p in truth if p.a == host})
    assert group.paths[0] == host  # the longest first
    assert len([c for c in group.copies if c.b.path.endswith("gradients2.mp4")]) == 2
    assert sum(len(g.paths) for g in found) == len({p for t in truth for p in (t.a, t.b)})


def test_path_gives_the_copies_of_one_video_as_the_whole_run_does(planted, index, found):
    _, truth = planted
    inserted = next(p.b for p in truth if p.kind == "inserted")
    [group] = index.copies(path=inserted)
    expected = [c for g in found for c in g.copies if inserted in (c.a.path, c.b.path)]
    assert group.copies == expected and inserted in group.paths


# ----------------------------------------------------------------- synthetic vectors
def _walk(rng, n, dim=32):
    """A video's windows: a random walk (adjacent windows alike), plus a common part."""
    return np.cumsum(rng.normal(size=(n, dim)), 0) * 0.3 + rng.normal(size=(n, dim)) + 2.0


def _synthetic(rng, videos=12, windows=40):
    """Unrelated videos, plus b = a[10:30] with noise; → vectors, paths, starts."""
    parts = [_walk(rng, windows) for _ in range(videos)]
    parts.append(parts[0][10:30] + rng.normal(size=(20, parts[0].shape[1])) * 0.2)
    paths = [f"/v/{i:02d}.mp4" for i, p in enumerate(parts) for _ in p]
    starts = np.concatenate([np.arange(len(p), dtype=float) for p in parts])
    return np.concatenate(parts).astype(np.float32), paths, starts


@pytest.fixture(scope="module")
def ann_index(tmp_path_factory):
    """Synthetic windows past a small `ann_threshold`: searched through the vector index."""
    vectors, paths, starts = _synthetic(np.random.default_rng(0), videos=60)
    index = VideoIndex(tmp_path_factory.mktemp("copies_ann") / "ix", ann_threshold=1000)
    index.add(Embeddings(vectors, paths, starts, starts + 2.0))
    return index


def test_copies_on_ray_equal_in_process(found, index, ann_index):
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        with warnings.catch_warnings():  # Ray starts its processes with JAX's threads running
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR)  # fmt: skip
    try:
        assert index.copies(ray=True) == found
        assert ann_index.copies(ray=True) == ann_index.copies()  # tasks open the table
    finally:
        if started:
            ray.shutdown()


def test_cli_json_lists_the_groups_and_bad_thresholds_name_the_flag(index, found, capsys):
    out = call(capsys, "copies", index.uri, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps([g.as_dict() for g in found]))
    text = call(capsys, "copies", index.uri, "--min-seconds", "5")
    assert text.returncode == 0 and "groups among the" in text.stdout
    for bad in ("0", "1.5", "-0.2", "nan", "high"):
        out = call(capsys, "copies", index.uri, "--threshold", bad)
        assert out.returncode == 2 and "--threshold" in out.stderr and "(0, 1]" in out.stderr
    out = call(capsys, "copies", index.uri, "--min-seconds", "0")
    assert out.returncode == 2 and "--min-seconds" in out.stderr
    out = call(capsys, "copies", index.uri, "--ray", "127.0.0.1:1")  # nothing listens there
    assert out.returncode == 2 and "--ray 127.0.0.1:1" in out.stderr
    out = call(capsys, "copies", str(index.uri) + "_missing")
    assert out.returncode == 1 and "_missing" in out.stderr and "Traceback" not in out.stderr


def test_the_vector_index_finds_the_copies_exact_search_finds(ann_index):
    assert ann_index.search(ann_index.vectors[:1])  # past the threshold: a vector index
    exact, approximate = ann_index.copies(exact=True), ann_index.copies()
    assert (
        [g.paths for g in approximate] == [g.paths for g in exact] == [["/v/00.mp4", "/v/60.mp4"]]
    )
    [copy] = approximate[0].copies
    assert copy.offset_s == pytest.approx(10.0, abs=STRIDE) and copy.a.start_s <= 11.0


def test_whole_video_index_reports_duplicates_with_offset_zero():
    rng = np.random.default_rng(1)
    base = _walk(rng, 6)
    vectors = np.concatenate([base, base[2:3] + 1e-4]).astype(np.float32)
    paths = [f"/w/{i}.mp4" for i in range(7)]
    index = VideoIndex()
    index.add(Embeddings(vectors, paths))  # no times: whole videos
    [group] = index.copies()
    [copy] = group.copies
    assert {copy.a.path, copy.b.path} == {"/w/2.mp4", "/w/6.mp4"} and copy.offset_s == 0.0
    assert copy.as_dict()["a"]["end_s"] is None  # no duration known
    # Two identical whole videos alone: no direction left once centred, still copies.
    pair = VideoIndex()
    pair.add(Embeddings(np.stack([base[0], base[0]]).astype(np.float32), ["/x/a", "/x/b"]))
    assert [g.paths for g in pair.copies()] == [["/x/a", "/x/b"]]


def test_an_empty_index_has_no_copies_and_bad_arguments_are_named():
    index = VideoIndex()
    assert index.copies() == []
    with pytest.raises(ValueError, match="not in the index"):
        index.copies(path="/nowhere.mp4")
    rng = np.random.default_rng(2)
    vectors, paths, starts = _synthetic(rng, videos=3)
    index.add(Embeddings(vectors, paths, starts, starts + 2.0))
    for name, value in (("threshold", 0), ("threshold", 1.01), ("threshold", float("nan")),
                        ("min_seconds", 0), ("min_seconds", -1), ("neighbours", 0),
                        ("neighbours", 2.5)):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name}="):
            index.copies(**{name: value})
    with pytest.raises(ValueError, match="not in the index"):
        index.copies(path="/nowhere.mp4")
    # The library function itself, given rows without the path: named, not an IndexError.
    from videoprism_keras.apps.copies import find_copies

    rows = index._rows(index.latest())
    with pytest.raises(ValueError, match=r"not in the index.*Received: path='/nowhere.mp4'"):
        find_copies(rows, stride=2.0, path="/nowhere.mp4")
    assert CopyGroup().as_dict() == {"paths": [], "copies": []}


def test_the_vote_finds_two_parts_at_two_offsets_and_drops_echoes():
    from videoprism_keras.apps.copy_vote import pair_runs

    # b's windows 0-4 are a's 10-14, b's 5-9 are a's 30-34 (offsets 10 and 25); every b
    # window also matches a's window 2 s later, a little worse (a slowly changing scene);
    # one stray match.
    b = np.concatenate([np.arange(10.0), np.arange(10.0), [7.0]])
    a = np.concatenate([np.where(b[:10] < 5, b[:10] + 10, b[:10] + 25),
                        np.where(b[:10] < 5, b[:10] + 12, b[:10] + 27), [50.0]])  # fmt: skip
    scores = np.concatenate([np.full(10, 0.99), np.full(10, 0.95), [0.93]])
    found = pair_runs(a, a + 2, b, b + 2, scores, stride=1.0, min_seconds=3.0)
    assert [(first, last, offset) for first, last, offset, _ in found] == [
        (10.0, 16.0, 10.0), (30.0, 36.0, 25.0)]  # fmt: skip
    assert all(score == pytest.approx(0.99) for *_, score in found)
    # Shorter than min_seconds: nothing.
    assert pair_runs(a, a + 2, b, b + 2, scores, stride=1.0, min_seconds=7.0) == []
