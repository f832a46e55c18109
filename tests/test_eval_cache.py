"""The embedding cache of `videoprism eval` (apps/evaluation/cache.py): a second call embeds
nothing, keys keep models, datasets, kinds and samplings apart, a killed run resumes
exactly once, spans and texts are cached, Ray gives the local vectors."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from videos import index_of, write_video

import videoprism_keras as vp
from videoprism_keras.apps import embed_videos
from videoprism_keras.apps.evaluation import cache as cache_module
from videoprism_keras.apps.evaluation.cache import (
    EmbeddingCache,
    model_key,
    pool_tokens,
    row_key,
    table_name,
)
from videoprism_keras.apps.evaluation.cache_clips import file_frames
from videoprism_keras.apps.evaluation.datasets import Clip
from videoprism_keras.runtime import Encoder
from videoprism_keras.video import Sampling

SAMPLING = dict(num_frames=2, size=36)
WORKER = Path(__file__).with_name("eval_cache_worker.py")


class CountingEncoder(Encoder):
    """Counts the clips and texts the model runs on."""

    def __init__(self, model):
        super().__init__(model)
        self.clips = self.texts = 0

    def video(self, pixels, frame_padding_mask=None):
        self.clips += len(pixels)
        return super().video(pixels, frame_padding_mask)

    def text(self, token_ids, padding_mask):
        self.texts += len(token_ids)
        return super().text(token_ids, padding_mask)


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    model = vp.VideoPrismBackbone.from_preset(
        str(golden_dir / "lvt_small.ckpt.npz"), attention_logit_soft_cap=5.0
    )
    return model, vp.VideoPrismTokenizer(media_dir / "test_spm.model")


@pytest.fixture(scope="module")
def module_encoder(lvt):
    return CountingEncoder(lvt[0])


@pytest.fixture()
def encoder(module_encoder):
    """The module's compiled model calls (compiled once), its counts from zero."""
    module_encoder.clips = module_encoder.texts = 0
    return module_encoder


@pytest.fixture(scope="module")
def key(lvt):
    return model_key(lvt[0], source="lvt_small", dtype="float32")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four generated videos (2-3.5 s at 10 fps, each frame its own pattern), a span of
    the last, and a file that is no video."""
    folder = tmp_path_factory.mktemp("clips")
    paths = [
        str(write_video(folder / f"v{i}.mp4", frames=20 + 5 * i, size=(32, 32))) for i in range(4)
    ]
    broken = folder / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    return [Clip(p) for p in paths] + [Clip(paths[3], 1.0, 2.0), Clip(str(broken))]


def _cache(tmp_path, key, dataset="ds"):
    return EmbeddingCache(tmp_path / "cache", key, dataset)


# ------------------------------------------------------------------ the cache itself
def test_a_second_call_embeds_nothing_and_gives_the_same_vectors(
    lvt, encoder, key, clips, tmp_path
):
    model, _ = lvt
    good = clips[:5]
    first = _cache(tmp_path, key).videos(
        model, [*good, good[0]], **SAMPLING, batch_size=2, progress=False, encoder=encoder
    )
    assert first.embedded == encoder.clips == 5 and first.failures == [] and first.ok.all()
    encoder.clips = 0
    assert first.vectors.shape == (6, 32) and first.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first.vectors[5], first.vectors[0])  # a key twice: one row
    again = _cache(tmp_path, key).videos(
        model, [*good, good[0]], **SAMPLING, progress=False, encoder=encoder
    )
    assert again.embedded == 0 and encoder.clips == 0
    np.testing.assert_array_equal(again.vectors, first.vectors)
    # A subset in another order: read back from the cache, in the order asked.
    subset = _cache(tmp_path, key).videos(
        model, good[::-2], **SAMPLING, progress=False, encoder=encoder
    )
    np.testing.assert_array_equal(subset.vectors, first.vectors[[4, 2, 0]])


def test_a_video_replaced_at_its_path_is_embedded_again(lvt, encoder, key, tmp_path):
    model, _ = lvt
    path = write_video(tmp_path / "v.mp4", frames=20, size=(32, 32))
    before = _cache(tmp_path, key).videos(
        model, [Clip(str(path))], **SAMPLING, progress=False, encoder=encoder
    )
    write_video(
        path, frames=20, size=(32, 32), image=lambda i: np.full((32, 32, 3), 9 * i, "uint8")
    )
    after = _cache(tmp_path, key).videos(
        model, [Clip(str(path))], **SAMPLING, progress=False, encoder=encoder
    )
    assert before.embedded == after.embedded == 1
    assert np.abs(after.vectors - before.vectors).max() > 1e-2


def test_a_file_s_spans_are_cut_in_one_decoding_pass(clips, monkeypatch):
    """Each span its own frames (read back from the generated frames' patterns: 10 fps),
    whatever the order asked; ends past the video cut back, an instant the frame on screen,
    a span past the end or backwards a failure; one decoding of the file for all."""
    import videoprism_keras.video.api as api

    passes = []
    decoded = api.decoded_frames
    monkeypatch.setattr(api, "decoded_frames", lambda path: passes.append(path) or decoded(path))
    asked = [
        ("late", 1.0, 100.0),
        ("a", 0.0, 1.0),
        ("b", 0.5, 1.5),
        ("instant", 1.23, 1.23),
        ("past", 50.0, 60.0),
        ("backwards", 1.5, 0.5),
        ("whole", None, None),
    ]
    got = {
        key: (frames, reason)
        for key, frames, reason in file_frames(clips[0].path, asked, 2, (36, 36))
    }
    frames = {
        key: [index_of(f) for f in value[0]] for key, value in got.items() if value[0] is not None
    }
    assert frames == {
        "a": [0, 5],
        "b": [5, 10],
        "late": [10, 15],
        "instant": [12, 12],
        "whole": [0, 10],
    }
    assert "past the end" in got["past"][1] and "start_s <= end_s" in got["backwards"][1]
    assert passes == [clips[0].path]  # one pass for the five spans (whole: its own sampling)


def test_the_vectors_are_the_embedding_code_s(lvt, encoder, key, clips, tmp_path):
    """Whole videos as `embed_videos` embeds them; a span as its window of `clip_seconds`
    (the same frames: `load_clip` is a window of `iter_clips`), unlike the whole video."""
    model, _ = lvt
    paths = [c.path for c in clips[:4]]
    got = (
        _cache(tmp_path, key)
        .videos(model, clips[:5], **SAMPLING, progress=False, encoder=encoder)
        .vectors
    )
    whole = embed_videos(model, paths, **SAMPLING, progress=False, encoder=encoder).vectors
    np.testing.assert_allclose(got[:4], whole, atol=1e-5)
    windows = embed_videos(
        model, paths[3], **SAMPLING, clip_seconds=1.0, progress=False, encoder=encoder
    )
    assert (windows.start_s[1], windows.end_s[1]) == (1.0, 2.0)
    np.testing.assert_allclose(got[4], windows.vectors[1], atol=1e-5)
    assert np.abs(got[4] - got[3]).max() > 1e-2  # the span is not the whole video


def test_a_broken_file_is_a_failure_not_an_error(lvt, encoder, key, clips, tmp_path):
    model, _ = lvt
    past_the_end = Clip(clips[0].path, 50.0, 60.0)
    got = _cache(tmp_path, key).videos(
        model, [clips[5], clips[0], past_the_end], **SAMPLING, progress=False, encoder=encoder
    )
    assert got.ok.tolist() == [False, True, False] and got.embedded == 1
    assert [path for path, _ in got.failures] == [clips[5].path, clips[0].path]
    assert "not a readable video" in got.failures[0][1] and "past the end" in got.failures[1][1]
    assert got.vectors.shape == (1, 32)
    # Nothing cached of them: a second call tries them again, and fails again.
    again = _cache(tmp_path, key).videos(
        model, [clips[5]], **SAMPLING, progress=False, encoder=encoder
    )
    assert again.ok.tolist() == [False] and len(again.failures) == 1 and again.embedded == 0


def test_datasets_kinds_samplings_and_models_do_not_share_rows(
    lvt, encoder, key, clips, tmp_path, golden_dir
):
    model, _ = lvt
    two = clips[:2]
    first = _cache(tmp_path, key).videos(model, two, **SAMPLING, progress=False, encoder=encoder)
    assert first.embedded == 2
    for cache, options in [
        (_cache(tmp_path, key, "other"), SAMPLING),
        (_cache(tmp_path, key), dict(num_frames=3, size=36)),
        (_cache(tmp_path, key), dict(**SAMPLING, kind="features")),
    ]:
        assert cache.videos(model, two, **options, progress=False, encoder=encoder).embedded == 2, (
            options
        )
    other = vp.VideoPrismBackbone.from_preset(
        str(golden_dir / "lvt_small.ckpt.npz"), attention_logit_soft_cap=10.0
    )
    other_key = model_key(other, source="lvt_small", dtype="float32")
    assert other_key != key  # same weights, another soft cap: other embeddings
    again = _cache(tmp_path, other_key).videos(other, two, **SAMPLING, progress=False)
    assert again.embedded == 2 and not np.allclose(again.vectors, first.vectors, atol=1e-4)
    names = {
        table_name(k, d, "video", Sampling(2, 36))
        for k in (key, other_key)
        for d in ("ds", "other")
    }
    assert len(names) == 4


def test_the_model_key_is_the_weights_dtype_and_adapters(lvt, key, tmp_path):
    model, _ = lvt
    assert len(key) == 16 and int(key, 16) >= 0
    assert model_key(model, source="a path to the same weights", dtype="float32") == key
    assert model_key(model, source="lvt_small", dtype="bfloat16") != key
    # Each engine its own approximation; Keras, the default, keeps the keys of before engines.
    int8 = {e: model_key(model, source="lvt_small", dtype="int8", engine=e)
            for e in ("keras", "openvino", "onnxruntime")}  # fmt: skip
    assert len({key, *int8.values()}) == 4
    assert model_key(model, source="lvt_small", dtype="float32", engine="keras") == key
    adapter = tmp_path / "adapter.npz"
    adapter.write_bytes(b"weights one")
    with_lora = model_key(model, source="lvt_small", dtype="float32", lora=[adapter])
    assert with_lora != key
    adapter.write_bytes(b"weights two")  # the same file name, other adapters
    assert model_key(model, source="lvt_small", dtype="float32", lora=[adapter]) != with_lora
    weights = model.weights[0]
    saved = weights.numpy()
    try:
        weights.assign(saved + 1.0)
        assert model_key(model, source="lvt_small", dtype="float32") != key
    finally:
        weights.assign(saved)


def test_texts_are_cached_per_model_whatever_the_dataset(lvt, encoder, key, tmp_path):
    model, tokenizer = lvt
    texts = ["a cat on a mat", "it's raining", "a cat on a mat"]
    first = _cache(tmp_path, key, "one").texts(
        model, tokenizer, texts, progress=False, encoder=encoder
    )
    assert first.shape == (3, 32) and encoder.texts == 2
    np.testing.assert_array_equal(first[0], first[2])
    ids, mask = tokenizer.tokenize_texts(texts[:2])
    np.testing.assert_allclose(first[:2], Encoder(model).text(ids, mask), atol=1e-5)
    # Another dataset, the same model: only the new text is embedded.
    second = _cache(tmp_path, key, "two").texts(
        model, tokenizer, ["it's raining", "a dog"], progress=False, encoder=encoder
    )
    assert encoder.texts == 3
    np.testing.assert_array_equal(second[0], first[1])
    # Another tokenizer (its settings make other token ids): its own texts.
    shorter = vp.VideoPrismTokenizer(tokenizer.proto, max_length=4)
    _cache(tmp_path, key, "two").texts(model, shorter, texts[:1], progress=False, encoder=encoder)
    assert encoder.texts == 4


def test_features_are_float16_tokens_pooled_to_the_grid(lvt, encoder, key, clips, tmp_path):
    model, _ = lvt
    full = _cache(tmp_path, key).videos(
        model, clips[:3], kind="features", **SAMPLING, progress=False, encoder=encoder
    )
    assert full.vectors.shape == (3, 2, 81, 32) and full.vectors.dtype == np.float16
    pooled = _cache(tmp_path, key).videos(
        model, clips[:3], kind="features", token_grid=3, **SAMPLING, progress=False, encoder=encoder
    )
    assert pooled.vectors.shape == (3, 2, 9, 32) and pooled.embedded == 3
    expected = pool_tokens(full.vectors.astype(np.float32), 3)
    np.testing.assert_allclose(pooled.vectors.astype(np.float32), expected, atol=2e-2)
    with pytest.raises(ValueError, match=r"between 1 and .*side \(9 for 81 .*token_grid=10"):
        _cache(tmp_path, key).videos(model, clips[:1], kind="features", token_grid=10, **SAMPLING)


def test_pool_tokens_averages_square_cells():
    side = np.arange(9, dtype=np.float32).reshape(1, 1, 9, 1)  # a 3 × 3 grid: 0..8
    np.testing.assert_allclose(pool_tokens(side, 1)[0, 0, :, 0], [4.0])
    np.testing.assert_allclose(pool_tokens(side, 3)[0, 0, :, 0], np.arange(9))
    # 3 into 2: rows and columns [0, 2) and [1, 3), as an adaptive pooling cuts them.
    np.testing.assert_allclose(pool_tokens(side, 2)[0, 0, :, 0], [2.0, 3.0, 5.0, 6.0])
    with pytest.raises(ValueError, match=r"grid side \(3 for 8 patches"):
        pool_tokens(np.zeros((1, 1, 8, 1)), 2)


def test_progress_counts_the_cached_clips_done_at_the_start(
    lvt, encoder, key, clips, tmp_path, monkeypatch
):
    import videoprism_keras.progress as progress

    bars = []

    class Bar:
        def __init__(self, enabled, total, unit="clip", desc=""):
            self.total, self.updates = total, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def close(self):
            pass

    monkeypatch.setattr(progress, "progress_bar", Bar)
    model, _ = lvt
    _cache(tmp_path, key).videos(model, clips[:2], **SAMPLING, batch_size=1, encoder=encoder)
    _cache(tmp_path, key).videos(
        model, clips[:3] + clips[5:], **SAMPLING, batch_size=1, encoder=encoder
    )
    assert bars[0].total == 2 and bars[0].updates == [0, 1, 1]
    # 2 cached, 1 to embed, 1 that fails: the total drops by what failed.
    assert bars[1].updates == [2, 1] and bars[1].total == 3


def test_arguments_are_checked_before_any_work(lvt, key, tmp_path):
    model, _ = lvt
    cache = _cache(tmp_path, key)
    for options, words in [
        (dict(kind="frames"), "kind must be one of .*Received: kind='frames'"),
        (dict(token_grid=2), "token_grid .*kind='features'.*token_grid=2"),
        (dict(batch_size=0), "batch_size must be a positive int"),
        (dict(ray=7), "ray must be None, True .*Received: ray=7"),
    ]:
        with pytest.raises(ValueError, match=words):
            cache.videos(model, [Clip("nowhere.mp4")], **options)
    with pytest.raises(ValueError, match="texts must be a list"):
        cache.texts(model, None, "one text")
    with pytest.raises(ValueError, match="texts need a video-text"):
        cache.texts(object(), None, ["a video-only model has no text encoder"])
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"must be a folder; .* is a file"):
        EmbeddingCache(tmp_path / "file", key, "ds")


def test_the_default_folder_is_the_environment_s(key, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOPRISM_EVAL_CACHE", str(tmp_path / "env"))
    assert EmbeddingCache(None, key, "ds").uri == str(tmp_path / "env")
    (tmp_path / "a file").write_text("")  # the error names the folder it resolved
    monkeypatch.setenv("VIDEOPRISM_EVAL_CACHE", str(tmp_path / "a file"))
    with pytest.raises(ValueError, match=r"is a file\. Received: folder='.*a file'"):
        EmbeddingCache(None, key, "ds")
    monkeypatch.delenv("VIDEOPRISM_EVAL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert EmbeddingCache(None, key, "ds").uri == str(tmp_path / ".cache/videoprism/eval")


class NaNEncoder(CountingEncoder):
    """The model's output, NaN for the clips numbered in `bad` (counted from 0)."""

    def __init__(self, model, bad):
        super().__init__(model)
        self.bad = set(bad)

    def video(self, pixels, frame_padding_mask=None):
        first = self.clips
        out = {name: np.array(value) for name, value in super().video(pixels).items()}
        for i in range(len(pixels)):
            if first + i in self.bad:
                for value in out.values():
                    value[i] = np.nan
        return out


def test_a_non_finite_embedding_fails_and_is_not_cached(lvt, key, clips, tmp_path):
    model, _ = lvt
    for kind in ("video", "features"):
        got = _cache(tmp_path, key).videos(
            model, clips[:3], kind=kind, **SAMPLING, batch_size=2, progress=False,
            encoder=NaNEncoder(model, bad=[1]),
        )  # fmt: skip
        assert got.ok.tolist() == [True, False, True] and got.embedded == 2, kind
        assert got.failures == [(clips[1].path, "the model returned NaN/inf")]
        assert len(got.vectors) == 2 and np.isfinite(got.vectors).all()
        # Not cached: the next run embeds that clip again (and only it).
        encoder = CountingEncoder(model)
        again = _cache(tmp_path, key).videos(
            model, clips[:3], kind=kind, **SAMPLING, progress=False, encoder=encoder
        )
        assert again.ok.all() and again.embedded == encoder.clips == 1, kind


def test_rows_of_an_older_cache_format_are_not_served(
    lvt, encoder, key, clips, tmp_path, monkeypatch
):
    model, _ = lvt
    assert _cache(tmp_path, key).videos(model, clips[:2], **SAMPLING, progress=False,
                                        encoder=encoder).embedded == 2  # fmt: skip
    name = table_name(key, "ds", "video", Sampling(**SAMPLING))
    monkeypatch.setattr(cache_module, "EVAL_CACHE_FORMAT", cache_module.EVAL_CACHE_FORMAT + 1)
    assert table_name(key, "ds", "video", Sampling(**SAMPLING)) != name
    encoder.clips = 0
    again = _cache(tmp_path, key).videos(model, clips[:2], **SAMPLING, progress=False,
                                         encoder=encoder)  # fmt: skip
    assert again.embedded == encoder.clips == 2


def test_rows_are_read_a_batch_at_a_time_as_they_are_read_at_once(lvt, encoder, key, clips,
                                                                    tmp_path):  # fmt: skip
    model, _ = lvt
    options = dict(kind="features", token_grid=2, **SAMPLING, progress=False, encoder=encoder)
    whole = _cache(tmp_path, key).videos(model, clips[:5], **options)
    lazy = _cache(tmp_path, key).videos(model, clips[:5][::-1], read=False, **options)
    assert lazy.vectors.shape == (0, 2, 4, 32) and lazy.embedded == 0
    rows = lazy.rows
    assert len(rows) == 5 and rows.shape == (5, 2, 4, 32) and rows.dtype == np.float16
    np.testing.assert_array_equal(rows.take([4, 0, 4]), whole.vectors[[0, 4, 0]])
    np.testing.assert_array_equal(np.concatenate(list(rows.batches(2))), whole.vectors[::-1])
    # Pinned to the version it was made at: later commits do not move its rows.
    table = _cache(tmp_path, key).table(
        table_name(key, "ds", "features", Sampling(**SAMPLING), 2), {}
    )
    for i in range(3):
        table.add([f"k{i}"], np.zeros((1, 2, 4, 32), np.float16))
    table.maintain()
    np.testing.assert_array_equal(rows.take([0, 1, 2, 3, 4]), whole.vectors[::-1])


# --------------------------------------------------------------------- a killed run
def test_a_killed_run_keeps_its_commits_and_the_next_embeds_the_rest_once(
    lvt, encoder, key, clips, golden_dir, tmp_path
):
    model, _ = lvt
    videos = clips[:4]
    cache = tmp_path / "killed"
    worker = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(cache),
            str(golden_dir / "lvt_small.ckpt.npz"),
            *[c.path for c in videos],
            "--stop-after",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    name = table_name(key, "ds", "video", Sampling(**SAMPLING))
    deadline = time.time() + 300  # the model's load and first clips, on a loaded machine
    while len(EmbeddingCache(cache, key, "ds").table(name, {}).keys()) < 2:
        assert worker.poll() is None, worker.stderr.read()[-2000:]
        assert time.time() < deadline, "the worker committed nothing in 300 s"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)
    assert EmbeddingCache(cache, key, "ds").table(name, {}).keys() == set(map(row_key, videos[:2]))
    resumed = EmbeddingCache(cache, key, "ds").videos(
        model, videos, **SAMPLING, progress=False, encoder=encoder
    )
    assert resumed.embedded == encoder.clips == 2 and resumed.ok.all()
    clean = EmbeddingCache(tmp_path / "clean", key, "ds").videos(
        model, videos, **SAMPLING, progress=False, encoder=encoder
    )
    np.testing.assert_allclose(resumed.vectors, clean.vectors, atol=1e-6)
    table = EmbeddingCache(cache, key, "ds").table(name, {})
    assert table.keys() == set(map(row_key, videos)) and table.table.count_rows() == 4  # once each


# ---------------------------------------------------------------------------- Ray
def test_ray_embeds_what_the_cache_lacks_as_the_local_path_does(
    lvt, encoder, key, clips, tmp_path, ray_local
):
    model, _ = lvt
    local = _cache(tmp_path, key).videos(model, clips, **SAMPLING, progress=False, encoder=encoder)
    on_ray = EmbeddingCache(tmp_path / "on_ray", key, "ds")
    held = on_ray.videos(
        model, clips[:1], **SAMPLING, progress=False, encoder=encoder
    )  # one clip cached first
    got = on_ray.videos(model, clips, **SAMPLING, batch_size=2, ray=ray_local, progress=False)
    assert got.embedded == 4 and got.ok.tolist() == local.ok.tolist()
    assert got.failures == local.failures
    np.testing.assert_allclose(got.vectors, local.vectors, atol=1e-5)
    np.testing.assert_array_equal(got.vectors[0], held.vectors[0])


def test_many_small_commits_are_merged_as_the_index_merges_them(key, tmp_path, monkeypatch):
    table = _cache(tmp_path, key).table("t", {})
    for i in range(40):  # a commit per batch
        table.add([f"k{i}"], np.full((1, 4), i, np.float32))
    table.maintain()  # a run's end
    assert table.latest().stats()["fragment_stats"]["num_fragments"] == 1
    np.testing.assert_array_equal(table.read(["k3", "k39", "k3"])[:, 0], [3, 39, 3])
    monkeypatch.setattr(cache_module, "EVAL_CACHE_READ_BYTES", 1)  # a row per query: the same rows
    np.testing.assert_array_equal(table.read(["k3", "k39", "k3"])[:, 0], [3, 39, 3])
