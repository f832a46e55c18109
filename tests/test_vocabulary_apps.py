"""One vocabulary in the video tools, the apps and the server: `num_frames` and `size`
(`Sampling.for_model`), `top_k`, `start_s`/`end_s`/`duration_s`, results as dataclasses
with `as_dict()`; and every name they had before still works for one release, with a
`DeprecationWarning` that names the new one (the API: a `Warning` header)."""

import asyncio
import math
import re
import warnings

import numpy as np
import pytest

# Imported at collection (see test_serve.py: pytest's rewriting inside a test once hit a
# CPython 3.11.7 parser bug).
from fastapi.testclient import TestClient
from helpers import TINY
from videos import write_video

import videoprism_keras as vp
from videoprism_keras import plots
from videoprism_keras.apps import Embeddings, IndexedClip, SearchHit, VideoIndex
from videoprism_keras.apps.embed_writer import EmbeddingWriter
from videoprism_keras.apps.embedding import Batch, embed_batches, item_key
from videoprism_keras.apps.ray_pipeline import RayRun
from videoprism_keras.serve import SearchService, create_app
from videoprism_keras.video import Clip, Sampling, VideoInfo, iter_clips, probe
from videoprism_keras.video.times import seconds_or_nan, seconds_or_none, time_key

# (That no public signature of these modules still uses an old name is checked with the
# model's, in test_vocabulary.py.)


def _message(where, old, new):
    return rf"{where}: `{old}` is deprecated and will be removed in the next release; use `{new}`"


# ------------------------------------------------------------- times, sampling
def test_one_conversion_between_nan_and_none():
    assert seconds_or_none(None) is None and seconds_or_none(np.nan) is None
    assert seconds_or_none(np.float32(2.5)) == 2.5 and type(seconds_or_none(np.int64(3))) is float
    assert math.isnan(seconds_or_nan(None)) and math.isnan(seconds_or_nan(float("nan")))
    assert seconds_or_nan(4) == 4.0
    assert time_key(1.23456789) == 1.234568 and time_key(None) is None is time_key(np.nan)
    assert item_key("a.mp4", 0.1 + 0.2, np.nan) == ("a.mp4", 0.3, None)


class _Model:
    num_frames, frame_shape = 8, (32, 48, 3)


def test_sampling_for_a_model_takes_its_frames_and_size_unless_given():
    assert Sampling.for_model(_Model()) == Sampling(8, (32, 48))
    given = Sampling.for_model(_Model(), 4, 16, dtype="uint8")
    assert given == Sampling(4, (16, 16), dtype="uint8")
    wrapper = type("Classifier", (), {"backbone": _Model()})()  # a model built on a backbone
    assert Sampling.for_model(wrapper, size=(8, 8)) == Sampling(8, (8, 8))
    assert Sampling.for_model(object(), 2, 8) == Sampling(2, (8, 8))
    with pytest.raises(TypeError, match=r"num_frames and size.*Received: a object"):
        Sampling.for_model(object())
    with pytest.raises(ValueError, match="resize_mode"):
        Sampling.for_model(_Model(), resize_mode="stretch")


def test_sampling_for_a_backbone_is_what_it_was_trained_with():
    model = vp.VideoPrismBackbone(**TINY)
    sampling = Sampling.for_model(model)
    assert (sampling.num_frames, sampling.size) == (4, (16, 16))


# ---------------------------------------------------------- video: Clip, VideoInfo
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "a.mp4"
    write_video(path, frames=20, size=(32, 32))  # 2 s at 10 fps
    return path


def test_a_clip_unpacks_as_its_docstring_says_and_keeps_its_old_names(video):
    clip = next(iter_clips(video, 1.0, num_frames=2, size=16))
    start_s, end_s, frames = clip
    assert (start_s, end_s) == (clip.start_s, clip.end_s) == (0.0, 1.0)
    assert frames is clip.frames
    for old, new in (("start", "start_s"), ("end", "end_s")):
        with pytest.warns(DeprecationWarning, match=_message("Clip", old, new)):
            assert getattr(clip, old) == getattr(clip, new)
    with pytest.warns(DeprecationWarning) as got:
        old = Clip(start=1.0, end=2.0, frames=frames, frame_padding_mask=clip.frame_padding_mask)
    assert (old.start_s, old.end_s) == (1.0, 2.0)
    assert sorted(str(w.message).split(";")[1] for w in got) == [" use `end_s`", " use `start_s`"]
    assert "start" not in dir(clip) and "start_s" in dir(clip)


def test_video_info_duration_is_duration_s(video):
    info = probe(video)
    assert info.duration_s == pytest.approx(2.0, abs=0.2)
    with pytest.warns(DeprecationWarning, match=_message("VideoInfo", "duration", "duration_s")):
        assert info.duration == info.duration_s
    with pytest.warns(DeprecationWarning, match="VideoInfo: `duration`"):
        assert VideoInfo(1, 25.0, duration=0.04, width=2, height=2, rotation=0).duration_s == 0.04


# ---------------------------------------------------------------- apps: results
def test_embeddings_take_and_answer_their_old_time_names(tmp_path):
    vectors = np.eye(3, dtype=np.float32)
    with pytest.warns(DeprecationWarning, match=_message("Embeddings", "starts", "start_s")):
        emb = Embeddings(vectors, ["a", "b", "c"], starts=[0, 1, None], end_s=[1, 2, None])
    np.testing.assert_array_equal(emb.start_s, [0, 1, np.nan])
    for old, new in (("starts", "start_s"), ("ends", "end_s")):
        with pytest.warns(DeprecationWarning, match=_message("Embeddings", old, new)):
            np.testing.assert_array_equal(getattr(emb, old), getattr(emb, new))
    with pytest.raises(TypeError, match=r"Received: starts=.* and start_s="):
        Embeddings(vectors, start_s=[0, 1, 2], starts=[0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names, and saving and loading, never warn
        again = Embeddings.load(emb.save(tmp_path / "e.npz"))
        assert set(np.load(tmp_path / "e.npz")) == {"vectors", "paths", "start_s", "end_s", "kind"}
    np.testing.assert_array_equal(again.end_s, emb.end_s)


def test_a_batch_keeps_its_old_time_names():
    with pytest.warns(DeprecationWarning, match=_message("Batch", "ends", "end_s")):
        batch = Batch(np.zeros((1, 2)), ["a"], [0.0], ends=[1.0], frames=None, last=[True])
    with pytest.warns(DeprecationWarning, match=_message("Batch", "starts", "start_s")):
        assert batch.starts == batch.start_s == [0.0]


def test_an_npz_of_the_earlier_release_loads_and_resumes(tmp_path):
    """`.npz` files (outputs and `embed`'s part files) named the times starts/ends."""
    old = tmp_path / "old.npz"
    np.savez(old, vectors=np.ones((2, 3), np.float32), paths=np.array(["a", "b"]),
             starts=np.array([0.0, np.nan]), ends=np.array([1.0, np.nan]),
             kind=np.array("video"))  # fmt: skip
    emb = Embeddings.load(old)
    assert emb.paths == ["a", "b"] and emb.start_s[0] == 0.0 and np.isnan(emb.end_s[1])
    writer = EmbeddingWriter(old, {"--kind": "video"}, resume=True)  # a finished output
    assert writer.resumed == 2 and writer.done("a", 0.0, 1.0) and writer.done("b", None, None)
    part = writer.parts / "part-000000.npz"
    np.savez(
        part,
        vectors=np.ones((1, 3), np.float32),
        paths=np.array(["c"]),
        starts=np.array([2.0]),
        ends=np.array([3.0]),
    )  # an interrupted run's part
    resumed = EmbeddingWriter(old, {"--kind": "video"}, resume=True)
    assert resumed.done("c", 2.0, 3.0)
    path, shape = resumed.finish("video")
    assert shape == (1, 3) and list(Embeddings.load(path).start_s) == [2.0]


def test_search_hits_keep_their_old_names():
    hit = SearchHit("a.mp4", 1.0, 2.0, 0.5, "id", 9.0)
    for old, new in (("start", "start_s"), ("end", "end_s"), ("duration", "duration_s")):
        with pytest.warns(DeprecationWarning, match=_message("SearchHit", old, new)):
            assert getattr(hit, old) == getattr(hit, new)
    with pytest.warns(DeprecationWarning, match=_message("SearchHit", "start", "start_s")):
        assert SearchHit("a.mp4", start=1.0, end_s=2.0, score=0.5, id="id", duration_s=9.0) == hit
    assert hit.as_dict() == {"path": "a.mp4", "start_s": 1.0, "end_s": 2.0, "score": 0.5,
                             "id": "id", "duration_s": 9.0}  # fmt: skip
    whole = SearchHit("b.mp4", np.nan, np.nan, 0.1).as_dict()
    assert whole["start_s"] is whole["end_s"] is whole["duration_s"] is None


@pytest.fixture()
def index(tmp_path):
    clips = Embeddings(np.eye(4, dtype=np.float32), ["a", "b", "c", "d"], [0, 1, None, 3],
                       [1, 2, None, 4])  # fmt: skip
    return VideoIndex(tmp_path / "ix").add(clips)


def test_an_indexed_clip_is_a_dataclass_still_read_as_a_dict(index):
    (hit,) = index.search(np.eye(4)[1], top_k=1)[0]
    clip = index.clip(hit.id)
    assert isinstance(clip, IndexedClip) and (clip.path, clip.start_s, clip.end_s) == ("b", 1, 2)
    np.testing.assert_array_equal(clip.vector, np.eye(4)[1])
    as_dict = clip.as_dict()
    assert set(as_dict) == {"id", "path", "start_s", "end_s", "duration_s", "vector"}
    assert as_dict["duration_s"] is None and as_dict["id"] == hit.id
    match = re.escape(
        "VideoIndex.clip: `clip['path']` is deprecated and will be removed in "
        "the next release; use `clip.path`"
    )
    with pytest.warns(DeprecationWarning, match=match):
        assert clip["path"] == "b"
    with pytest.warns(DeprecationWarning, match=r"`clip\['start_s'\]` is deprecated"):
        assert clip.get("start_s") == 1.0
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        clip["nothing"]
    with pytest.warns(DeprecationWarning):  # the whole of a dict's reading, not only []
        assert "path" in clip and dict(clip) == dict(clip.items()) and len(clip) == 6
        assert set(clip.keys()) == set(as_dict) and {**clip}["path"] == "b"
    whole = index.clip(index.search(np.eye(4)[2], top_k=1)[0][0].id)
    assert math.isnan(whole.start_s) and whole.as_dict()["start_s"] is None
    assert index.clip("0" * 32 + "@whole") is None


def test_an_index_answers_its_old_time_names(index):
    for old, new in (("starts", "start_s"), ("ends", "end_s")):
        with pytest.warns(DeprecationWarning, match=_message("VideoIndex", old, new)):
            np.testing.assert_array_equal(getattr(index, old), getattr(index, new))
    assert sorted(index.start_s[~np.isnan(index.start_s)]) == [0, 1, 3]


def test_the_index_writer_takes_its_old_keywords(tmp_path):
    index = VideoIndex(tmp_path / "ix")
    writer = index.writer()
    (file,) = [vp.apps.index.store.identity_of("x.mp4")]
    with pytest.warns(DeprecationWarning) as got:
        writer.commit([file], starts=[0.0], ends=[1.0], vectors=np.ones((1, 4)), last=[True],
                      durations=[5.0])  # fmt: skip
    assert sorted(str(w.message).split(" is ")[0] for w in got) == [
        "IndexWriter.commit: `durations`", "IndexWriter.commit: `ends`",
        "IndexWriter.commit: `starts`"]  # fmt: skip
    (hit,) = index.search(np.ones(4), top_k=1)[0]
    assert (hit.start_s, hit.end_s, hit.duration_s) == (0.0, 1.0, 5.0)


@pytest.mark.backend
def test_embed_batches_returns_its_failures_and_still_fills_a_list_given(video):
    model = vp.VideoPrismBackbone(**TINY)
    clips = np.random.default_rng(0).random((2, 4, 16, 16, 3)).astype(np.float32)
    sources = [clips[0], "missing.mp4", clips[1]]
    with pytest.raises(TypeError, match="positional"):
        embed_batches(model, sources, "video")  # keyword-only after the videos
    stream = embed_batches(model, sources, on_error="skip", progress=False)
    assert sum(len(b.paths) for b in stream) == 2
    assert [p for p, _ in stream.failures] == ["missing.mp4"] and stream.skipped == 0
    failures, skipped = [], [0]
    with pytest.warns(DeprecationWarning, match=_message("embed_batches", "failures",
                                                         "BatchStream.failures")):  # fmt: skip
        old = embed_batches(model, [video], clip_seconds=1.0, on_error="skip", progress=False,
                            exclude={item_key(video, 0.0, 1.0)}, failures=failures)  # fmt: skip
    assert [b.start_s for b in old] == [[1.0]] and old.skipped == 1 and old.failures is failures
    with pytest.warns(DeprecationWarning, match="embed_batches: `skipped`"):
        list(embed_batches(model, [video], exclude=lambda *item: True, skipped=skipped,
                           progress=False))  # fmt: skip
    assert skipped == [1]


def test_a_ray_run_still_unpacks_as_embed_on_ray_s_old_tuple():
    run = RayRun(np.zeros((2, 0)), ["a", "b"], [0, 1], [1, 2], failures=[("c", "bad")],
                 skipped=3)  # fmt: skip
    assert isinstance(run, Embeddings) and (run.written, run.skipped) == (2, 3)
    match = "embed_on_ray: `written, failures = embed_on_ray.*` is deprecated"
    with pytest.warns(DeprecationWarning, match=match):
        written, failures = run
    assert (written, failures) == (2, [("c", "bad")])
    with pytest.warns(DeprecationWarning, match=match):
        assert run[1] == [("c", "bad")]


def test_frame_strip_takes_its_old_keywords(video):
    with pytest.warns(DeprecationWarning, match=_message("frame_strip", "start", "start_s")):
        strip = plots.frame_strip(video, start=0.0, end_s=1.0, count=2, height=16)
    assert strip.shape[0] == 16


# ------------------------------------------------------------------ the server
@pytest.fixture()
def served(index):
    model = vp.VideoPrismBackbone(**TINY)
    service = SearchService(VideoIndex.load(index.uri), model)
    with TestClient(create_app(service, warm_up=False), base_url="http://127.0.0.1") as client:
        yield client, service


def test_the_service_says_size_and_top_k(served, index):
    client, service = served
    assert (service.num_frames, service.sampling.size) == (4, (16, 16))
    with pytest.warns(DeprecationWarning, match=_message("SearchService", "frame_size",
                                                         "sampling.size")):  # fmt: skip
        assert service.frame_size == (16, 16)
    query = np.eye(4)[0]
    new = asyncio.run(service.search(query, top_k=2))
    with pytest.warns(DeprecationWarning, match=_message("SearchService.search", "k", "top_k")):
        old = asyncio.run(service.search(query, k=2))
    assert [h.as_dict() for h in old] == [h.as_dict() for h in new] and len(new) == 2
    info = client.get("/api/info").json()
    assert info["size"] == 4 and info["limits"]["top_k"] == info["limits"]["k"] == 100
    assert info["frame_size"] == info["sampling"]["size"]  # the old field, for one release
    assert set(info["sampling"]) == {"num_frames", "size", "clip_seconds", "stride_seconds",
                                     "whole_videos", "dtype"}  # fmt: skip


def test_the_api_takes_top_k_and_its_old_name_k(served, index):
    client, _ = served
    clip = index.search(np.eye(4)[0], top_k=1)[0][0].id
    url = f"/api/clips/{clip}/similar"
    new = client.get(url, params={"top_k": 2})
    assert new.status_code == 200 and "warning" not in new.headers
    assert len(new.json()["hits"]) == 2 and new.json()["query"]["top_k"] == 2
    assert len(client.get(url).json()["hits"]) == 3  # the default (12): all the others
    with pytest.warns(DeprecationWarning, match=_message("videoprism serve", "k", "top_k")):
        old = client.get(url, params={"k": 2})
    assert old.status_code == 200 and old.json()["hits"] == new.json()["hits"]
    assert "`k` is deprecated" in old.headers["warning"] and "`top_k`" in old.headers["warning"]
    both = client.get(url, params={"top_k": 2, "k": 3})
    assert both.status_code == 400
    error = both.json()["error"]
    assert error.startswith("top_k and k:") and "top_k=2, k=3" in error
    assert "k: Input should be" in client.get(url, params={"k": 0}).json()["error"]
    schema = client.get("/openapi.json").json()["paths"]["/api/search"]["get"]["parameters"]
    k = next(p for p in schema if p["name"] == "k")
    assert k.get("deprecated") and "old name of top_k" in k["description"]
