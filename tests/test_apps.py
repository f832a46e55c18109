"""The Python applications: zero-shot classification, embedding export, the video index."""

import json
import threading

import numpy as np
import pytest
from helpers import TINY, to_numpy
from videos import write_video

import videoprism_keras as vp
from videoprism_keras.apps import Embeddings, VideoIndex, ZeroShotClassifier, embed_videos
from videoprism_keras.apps.embedding import in_background
from videoprism_keras.runtime import sigmoid, softmax

LABELS = ["drumming", "cooking", "a cat", "dancing"]


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)
    return model, vp.VideoPrismTokenizer(media_dir / "test_spm.model")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "a.mp4", frames=30, size=(32, 32))  # 3 s at 10 fps
    (folder / "nested").mkdir()
    write_video(folder / "nested" / "b.mp4", frames=15, size=(32, 32))  # 1.5 s
    (folder / "notes.txt").write_text("not a video")
    return folder


def _unit(rng, n, dim=32):
    x = rng.normal(size=(n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------ zero-shot classification
@pytest.mark.backend
def test_zero_shot_probabilities_are_the_tempered_softmax(lvt):
    model, tok = lvt
    clf = ZeroShotClassifier(model, tok, LABELS)
    assert clf.prompts[0] == "a video of drumming."  # the official template
    ids, mask = tok.tokenize_texts(clf.prompts)
    text = to_numpy(model.encode_text(ids, mask))
    np.testing.assert_allclose(clf.text_embeddings, text, atol=1e-5)
    video = _unit(np.random.default_rng(0), 3)
    sims = clf.similarities(video)
    np.testing.assert_allclose(sims, video @ text.T, atol=1e-5)
    probs = clf.probabilities(video)
    np.testing.assert_allclose(probs, softmax(sims / 0.01), rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    # A higher temperature flattens the distribution; a lower one sharpens it.
    flat = ZeroShotClassifier(model, tok, LABELS, temperature=1.0).probabilities(video)
    np.testing.assert_allclose(flat, softmax(sims), rtol=1e-5)
    assert np.ptp(flat, axis=1).max() < np.ptp(probs, axis=1).min()
    # A 1-D embedding is a batch of one.
    np.testing.assert_allclose(clf.probabilities(video[0]), probs[:1], rtol=1e-5)


@pytest.mark.backend
def test_zero_shot_template_and_top_k(lvt):
    model, tok = lvt
    video = _unit(np.random.default_rng(1), 2)
    default = ZeroShotClassifier(model, tok, LABELS)
    custom = ZeroShotClassifier(model, tok, LABELS, template="someone {} {on} camera")
    assert custom.prompts[2] == "someone a cat {on} camera"  # only "{}" is the label
    assert not np.allclose(default.text_embeddings, custom.text_embeddings, atol=1e-4)
    top = default.classify(video, top_k=2)
    probs = default.probabilities(video)
    assert [len(row) for row in top] == [2, 2]
    for row, p in zip(top, probs, strict=True):
        assert row[0][1] >= row[1][1]
        assert [label for label, _ in row] == [LABELS[j] for j in np.argsort(-p)[:2]]
        assert row[0][1] == pytest.approx(p.max())
    everything = default.classify(video, top_k=10)  # more than there are labels: all
    assert [len(row) for row in everything] == [4, 4]
    assert sum(prob for _, prob in everything[0]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.backend
def test_zero_shot_bad_arguments(lvt):
    model, tok = lvt
    with pytest.raises(ValueError, match="distinct"):
        ZeroShotClassifier(model, tok, ["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        ZeroShotClassifier(model, tok, [])
    with pytest.raises(ValueError, match="list of class names"):
        ZeroShotClassifier(model, tok, "drumming")
    with pytest.raises(ValueError, match="template"):
        ZeroShotClassifier(model, tok, LABELS, template="a video of")
    for temperature in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            ZeroShotClassifier(model, tok, LABELS, temperature=temperature)
    with pytest.raises(ValueError, match="top_k"):
        ZeroShotClassifier(model, tok, LABELS).classify(_unit(np.random.default_rng(0), 1), 0)
    with pytest.raises(ValueError, match="video-text"):
        ZeroShotClassifier(vp.VideoPrismBackbone(**TINY), tok, LABELS)


def test_softmax_and_sigmoid():
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = softmax(x)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_allclose(p[0], [1, 0, 0])
    with np.errstate(over="raise"):
        np.testing.assert_allclose(sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0, 0.5, 1])


# ------------------------------------------------------------------ embedding export
@pytest.mark.backend
def test_clip_mode_export_keeps_paths_and_times(lvt, videos, tmp_path):
    model, _ = lvt
    files = [str(videos / "a.mp4"), str(videos / "nested" / "b.mp4")]
    emb = embed_videos(model, files, batch_size=2, num_frames=4, size=(16, 16),
                       clip_seconds=1.0, progress=False)  # fmt: skip
    paths = [files[0]] * 3 + [files[1]] * 2
    assert emb.paths == paths and emb.vectors.shape == (5, 32)
    np.testing.assert_allclose(emb.start_s, [0, 1, 2, 0, 1])
    np.testing.assert_allclose(emb.end_s, [1, 2, 3, 1, 1.5])
    npz = Embeddings.load(emb.save(tmp_path / "e.npz"))
    assert list(npz.paths) == paths
    np.testing.assert_array_equal(npz.start_s, emb.start_s)
    np.testing.assert_array_equal(npz.end_s, emb.end_s)
    import pyarrow.parquet as pq

    table = pq.read_table(emb.save(tmp_path / "e.parquet"))
    assert table.column_names == ["path", "start_s", "end_s", "embedding"]
    assert table["path"].to_pylist() == paths
    assert table["start_s"].to_pylist() == list(emb.start_s)
    assert table["end_s"].to_pylist() == list(emb.end_s)
    # .npy stays a plain array; the names and times go to a .json sidecar.
    emb.save(tmp_path / "e.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), emb.vectors)
    sidecar = json.loads((tmp_path / "e.json").read_text())
    assert sidecar["paths"] == paths and sidecar["start_s"] == [0, 1, 2, 0, 1]
    again = Embeddings.load(tmp_path / "e.npy")
    assert again.paths == paths and again.kind == "video"
    np.testing.assert_array_equal(again.end_s, emb.end_s)
    # Whole videos: no times (NaN in Python, null in the sidecar).
    whole = embed_videos(model, files, num_frames=4, size=(16, 16), progress=False)
    whole.save(tmp_path / "w.npy")
    assert json.loads((tmp_path / "w.json").read_text())["start_s"] == [None, None]
    assert np.isnan(Embeddings.load(tmp_path / "w.npy").start_s).all()


def test_clip_seconds_needs_files():
    model = vp.VideoPrismBackbone(**TINY)
    with pytest.raises(ValueError, match=r"clip_seconds .* videos\[1\] is a ndarray"):
        embed_videos(model, ["x.mp4", np.zeros((4, 16, 16, 3))], clip_seconds=1.0)


def test_in_background_passes_items_errors_and_stops_early():
    assert list(in_background(iter(range(50)), ahead=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("decoding failed")

    stream = in_background(failing(), ahead=2)
    assert next(stream) == 1
    with pytest.raises(ValueError, match="decoding failed"):
        next(stream)
    produced, closed, producers = [], threading.Event(), []

    def endless():
        producers.append(threading.current_thread())
        try:
            for i in range(10**9):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = in_background(endless(), ahead=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # the consumer stops: the thread stops and closes the generator
    assert closed.wait(5)
    (producer,) = producers
    producer.join(5)
    assert not producer.is_alive()  # so `produced` can grow no more
    assert len(produced) <= 3 + 2 + 1


# ---------------------------------------------------------------------- video index
@pytest.mark.backend
def test_index_from_a_folder_skips_what_it_holds(lvt, videos, tmp_path):
    model, _ = lvt
    options = dict(num_frames=4, size=(16, 16), progress=False)
    index = VideoIndex.from_videos(model, [videos], clip_seconds=1.0, **options)
    a, b = str(videos / "a.mp4"), str(videos / "nested" / "b.mp4")  # .txt ignored, walked
    assert index.paths == [a] * 3 + [b] * 2 and len(index) == 5
    added = index.add_videos(model, videos / "a.mp4", clip_seconds=1.0, **options)
    assert len(added) == 0 and added.skipped == 3 and len(index) == 5
    # One index, one sampling: other windows (or whole videos) are refused.
    with pytest.raises(ValueError, match=r"clip_seconds=1\.0; got clip_seconds=2\.0"):
        index.add_videos(model, [videos], clip_seconds=2.0, **options)
    with pytest.raises(ValueError, match="clip_seconds=None"):
        index.add_videos(model, [videos / "a.mp4"], **options)
    assert len(index) == 5
    index.save(tmp_path / "ix")
    reopened = VideoIndex.load(tmp_path / "ix")
    assert reopened.keys() == index.keys() and len(reopened) == 5
    hit = reopened.search(index.vectors[2], top_k=1)[0][0]  # (a and b begin alike)
    assert (hit.path, hit.start_s, hit.end_s) == (a, 2.0, 3.0)
    with pytest.raises(FileNotFoundError, match="missing"):
        index.add_videos(model, [tmp_path / "missing"], clip_seconds=1.0, **options)
    whole = VideoIndex.from_videos(model, [videos / "a.mp4"], **options)  # a whole video
    assert len(whole) == 1 and np.isnan(whole.start_s[-1])
    assert whole.add_videos(model, [videos / "a.mp4"], **options).skipped == 1


def test_index_builds_its_vector_index_once_at_the_threshold(tmp_path):
    rng = np.random.default_rng(0)
    index = VideoIndex(tmp_path / "ix", ann_threshold=256)  # (k-means wants a few hundred rows)
    index.add(Embeddings(_unit(rng, 200), [f"a{i}" for i in range(200)]))
    assert index.stats().indices == 0  # below the threshold: exact search
    index.add(Embeddings(_unit(rng, 100), [f"b{i}" for i in range(100)]))
    built = index.stats()
    assert built.indices == 1 and built.has_vector_index  # crossed it: built on add
    reopened = VideoIndex.load(tmp_path / "ix")
    assert reopened.search(index.vectors[207], 1)[0][0].path == "b7"
    reopened.add(Embeddings(_unit(rng, 20), [f"c{i}" for i in range(20)]))  # kept up to date
    again = reopened.stats()  # updated, not rebuilt under another name
    assert again.indices == 1 and again.vector_index == built.vector_index
    assert again.unindexed_rows == 0
    c17 = reopened.vectors[reopened.paths.index("c17")]  # (compaction may reorder rows)
    assert reopened.search(c17, 1)[0][0].path == "c17"
    # An index saved elsewhere is a copy with its own vector index.
    small = VideoIndex(ann_threshold=256).add(
        Embeddings(_unit(rng, 300), list(map(str, range(300))))
    )
    small.save(tmp_path / "small")
    assert VideoIndex.load(tmp_path / "small").stats().has_vector_index
    VideoIndex().save(tmp_path / "empty")  # an empty index saves (a folder) and reopens empty
    assert len(VideoIndex(tmp_path / "empty")) == 0
