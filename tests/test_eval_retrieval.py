"""`eval retrieval`'s metrics from embeddings, against ranks worked out by hand and by
sorting: text→video (each caption finds its clip), video→text (a clip found by any of
its captions), ties against the query, the bootstrap intervals (clips resampled with all
their captions); and `run_retrieval` on a stand-in cache: clips
that fail to decode leave with their captions and are counted."""

import types

import numpy as np
import pytest

from videoprism_keras.apps.evaluation import metrics, retrieval


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# Three clips along the axes; four captions, clip 0 described twice.
VIDEOS = _unit(np.eye(3))
TEXTS = _unit([[0.9, 0.1, 0.0],  # clip 0's: nearest clip 0 → rank 1
               [0.2, 0.9, 0.1],  # clip 0's: clip 1 above it → rank 2
               [0.0, 0.3, 0.95],  # clip 1's: clip 2 above it → rank 2
               [0.1, 0.0, 0.99]])  # clip 2's → rank 1  # fmt: skip
CAPTION_CLIP = [0, 0, 1, 2]


def test_ranks_by_hand_with_several_captions_per_clip():
    ranks = retrieval.retrieval_ranks(VIDEOS, TEXTS, CAPTION_CLIP)
    assert ranks["t2v"].tolist() == [1, 2, 2, 1]
    # Clip 0 is found by its first caption; clip 1's caption is second to caption 1
    # (0.9 against 0.3); clip 2's is first.
    assert ranks["v2t"].tolist() == [1, 2, 1]


def test_metrics_by_hand():
    values, intervals = retrieval.retrieval_metrics(VIDEOS, TEXTS, CAPTION_CLIP, bootstrap=0)
    assert intervals == {}
    assert values == pytest.approx({  # fractions; ranks as ranks
        "t2v_R@1": 0.5, "t2v_R@5": 1.0, "t2v_R@10": 1.0, "t2v_MdR": 1.5, "t2v_MnR": 1.5,
        "v2t_R@1": 2 / 3, "v2t_R@5": 1.0, "v2t_R@10": 1.0, "v2t_MdR": 1.0, "v2t_MnR": 4 / 3,
    })  # fmt: skip


def test_ranks_equal_the_positions_after_sorting_on_random_embeddings():
    rng = np.random.default_rng(0)
    videos, texts = _unit(rng.normal(size=(30, 8))), _unit(rng.normal(size=(70, 8)))
    caption_clip = np.concatenate([np.arange(30), rng.integers(0, 30, 40)])
    ranks = retrieval.retrieval_ranks(videos, texts, caption_clip)
    scores = texts @ videos.T
    t2v = [1 + list(np.argsort(-row)).index(c) for row, c in zip(scores, caption_clip, strict=True)]
    v2t = []
    for clip in range(30):
        order = list(np.argsort(-scores[:, clip]))
        v2t.append(1 + min(order.index(i) for i in np.flatnonzero(caption_clip == clip)))
    assert ranks["t2v"].tolist() == t2v
    assert ranks["v2t"].tolist() == v2t


def test_a_clip_without_captions_is_a_candidate_not_a_query():
    videos = _unit([[1, 0], [0.7, 0.7]])  # clip 1 has no caption, and outscores clip 0
    texts = _unit([[0.6, 0.8]])
    ranks = retrieval.retrieval_ranks(videos, texts, [0])
    assert ranks["t2v"].tolist() == [2]
    assert ranks["v2t"].tolist() == [1]


def test_intervals_are_seeded_and_hold_the_estimate():
    rng = np.random.default_rng(1)
    videos = _unit(rng.normal(size=(40, 6)))
    texts = _unit(videos + rng.normal(scale=0.8, size=videos.shape))
    values, intervals = retrieval.retrieval_metrics(videos, texts, range(40), bootstrap=200,
                                                    seed=3)  # fmt: skip
    again = retrieval.retrieval_metrics(videos, texts, range(40), bootstrap=200, seed=3)[1]
    other = retrieval.retrieval_metrics(videos, texts, range(40), bootstrap=200, seed=4)[1]
    assert intervals == again and intervals != other
    assert set(intervals) == set(values)
    for name, (low, high) in intervals.items():
        assert low <= values[name] <= high, name
    assert intervals["t2v_R@1"][1] - intervals["t2v_R@1"][0] > 0.05  # 40 queries: not a point


def _clustered(seed: int, clips: int = 30, per_clip: int = 10):
    """Clips with `per_clip` captions each, listed in shuffled order (a clip's captions are
    not next to each other), noisy enough for ranks to spread."""
    rng = np.random.default_rng(seed)
    videos = _unit(rng.normal(size=(clips, 8)))
    caption_clip = rng.permutation(np.repeat(np.arange(clips), per_clip))
    texts = _unit(videos[caption_clip] + rng.normal(scale=0.9, size=(len(caption_clip), 8)))
    return videos, texts, caption_clip


def test_t2v_intervals_resample_clips_with_all_their_captions():
    videos, texts, caption_clip = _clustered(5)
    _, intervals = retrieval.retrieval_metrics(videos, texts, caption_clip, bootstrap=100,
                                               seed=2)  # fmt: skip
    rank = retrieval.retrieval_ranks(videos, texts, caption_clip)["t2v"]
    by_clip = [rank[caption_clip == clip] for clip in range(30)]  # the gallery held fixed

    def pooled(picked, name):
        return metrics.retrieval(np.concatenate([by_clip[c] for c in picked]))[name]

    for name in ("R@1", "R@5", "MdR", "MnR"):
        expected = metrics.bootstrap_interval(lambda picked, n=name: pooled(picked, n), 30,
                                              samples=100, seed=2)  # fmt: skip
        assert intervals[f"t2v_{name}"] == pytest.approx(expected), name


def test_ten_identical_captions_per_clip_give_the_clip_level_interval():
    """A clip's ten captions alike are one query's worth of evidence: the interval is that of
    resampling the clips' single ranks, not ten times narrower in variance."""
    rng = np.random.default_rng(6)
    videos = _unit(rng.normal(size=(30, 8)))
    one = _unit(videos + rng.normal(scale=0.9, size=videos.shape))
    caption_clip = np.repeat(np.arange(30), 10)
    _, intervals = retrieval.retrieval_metrics(videos, one[caption_clip], caption_clip,
                                               bootstrap=100, seed=1)  # fmt: skip
    single = retrieval.retrieval_ranks(videos, one, np.arange(30))["t2v"]
    for name in ("R@1", "R@5", "MdR", "MnR"):
        expected = metrics.bootstrap_interval(lambda p, n=name: metrics.retrieval(single[p])[n],
                                              30, samples=100, seed=1)  # fmt: skip
        assert intervals[f"t2v_{name}"] == pytest.approx(expected), name
    assert intervals["t2v_R@1"][1] - intervals["t2v_R@1"][0] > 0.15  # 30 clips' worth


def test_a_model_that_embeds_everything_alike_recalls_nothing():
    videos = np.ones((4, 3), np.float32) / np.sqrt(3)
    values, _ = retrieval.retrieval_metrics(videos, videos[[0, 1, 2, 3, 0]], [0, 1, 2, 3, 0],
                                            bootstrap=0)  # fmt: skip
    assert values["t2v_R@1"] == 0.0 and values["v2t_R@1"] == 0.0
    ranks = retrieval.retrieval_ranks(videos, videos[[0, 1, 2, 3, 0]], [0, 1, 2, 3, 0])
    assert ranks["t2v"].tolist() == [4] * 5  # last among the 4 clips
    # Last among the 5 captions, its own other caption not counted against clip 0.
    assert ranks["v2t"].tolist() == [4, 5, 5, 5]


@pytest.mark.parametrize(
    "texts, caption_clip, says",
    [
        (TEXTS, [0, 0, 1], "one clip index per caption (4)"),
        (TEXTS, [0, 0, 1, 3], "clip indices in [0, 3)"),
        (TEXTS[:, :2], CAPTION_CLIP, "of one width"),
    ],
)
def test_bad_arguments_say_what_was_expected(texts, caption_clip, says):
    with pytest.raises(ValueError, match="Received") as error:
        retrieval.retrieval_ranks(VIDEOS, texts, caption_clip)
    assert says in str(error.value)


class StandInCache:
    """`EmbeddingCache`'s interface over fixed vectors: clip `fail` cannot be read."""

    model_key = "k123"

    def __init__(self, videos, texts: dict, fail=()):
        self.all, self.by_text, self.fail = videos, texts, set(fail)
        self.asked = []

    def videos(self, model, clips, **options):
        self.asked.append(options)
        ok = np.array([i not in self.fail for i in range(len(clips))])
        failures = [(clips[i].path, "not a video") for i in sorted(self.fail)]
        return types.SimpleNamespace(vectors=self.all[ok], ok=ok, failures=failures,
                                     embedded=int(ok.sum()))  # fmt: skip

    def texts(self, model, tokenizer, texts, **options):
        return np.stack([self.by_text[t] for t in texts])


def stand_in_model():
    return types.SimpleNamespace(num_frames=8, frame_shape=(288, 288, 3), name="small",
                                 dtype_policy=types.SimpleNamespace(name="float32"))  # fmt: skip


def dataset(**fields):
    """`datasets.Dataset`'s fields that the run reads."""
    clips = [types.SimpleNamespace(path=f"/v/clip{i}.mp4") for i in range(3)]
    base = dict(name="csv:test", format="csv", task="retrieval", annotations="/v/test.csv",
                clips=clips, missing=["/v/gone.mp4"], total=4, protocol="",
                captions=["a", "b", "c", "d"], caption_clip=CAPTION_CLIP)  # fmt: skip
    return types.SimpleNamespace(**{**base, **fields})


def test_run_excludes_a_failed_clip_with_its_captions_and_counts_it():
    texts = dict(zip("abcd", TEXTS, strict=True))
    cache = StandInCache(VIDEOS, texts, fail=[1])
    lines = []
    record = retrieval.run_retrieval(stand_in_model(), None, dataset(), cache, num_frames=2,
                                     size=36, bootstrap=50, log=lines.append)  # fmt: skip
    assert cache.asked[0]["num_frames"] == 2 and cache.asked[0]["size"] == 36
    # Clips 0 and 2 remain, with captions a, b, d: ranks 1, 1 (clip 1 is gone), 1.
    assert record["metrics"]["t2v_R@1"] == 1.0
    assert record["items"] == {
        "used": 2,
        "missing": 1,
        "failed": 1,
        "total": 4,
        "missing_queries": 0,
    }
    assert record["sampling"] == {"num_frames": 2, "size": 36}
    assert record["settings"]["captions"] == 3
    assert "excluded" in record["settings"]["failed"]
    assert "gallery is held fixed" in record["settings"]["bootstrap"]
    assert lines == ["skipped /v/clip1.mp4: not a video",
                     "videos: 2 embedded, 0 from the cache, 1 failed"]  # fmt: skip


def test_run_refuses_a_classification_dataset():
    with pytest.raises(ValueError, match="expected a retrieval dataset"):
        retrieval.run_retrieval(stand_in_model(), None, dataset(task="classification",
                                                                captions=[], caption_clip=[]),
                                StandInCache(VIDEOS, {}))  # fmt: skip


def test_a_real_run_equals_ranks_by_sorting_its_cached_embeddings(collection_model, media_dir,
                                                                   tmp_path):  # fmt: skip
    """The small checkpoint through the real cache: the record's figures are those of the
    embeddings the cache holds, ranked by sorting (a broken video left out)."""
    from videos import lavfi_video

    from videoprism_keras.apps.evaluation.cache import EmbeddingCache
    from videoprism_keras.apps.evaluation.datasets import read_dataset
    from videoprism_keras.tokenizer import VideoPrismTokenizer

    for i, source in enumerate(("testsrc2", "mandelbrot", "life")):
        lavfi_video(tmp_path / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
    (tmp_path / "broken.mp4").write_bytes(b"no video" * 100)
    rows = ["v0.mp4,a pattern", "v1.mp4,a fractal", "v2.mp4,life", "v0.mp4,bars",
            "broken.mp4,nothing to see"]  # fmt: skip
    (tmp_path / "c.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    data = read_dataset(tmp_path / "c.csv")
    tokenizer = VideoPrismTokenizer(media_dir / "test_spm.model")
    cache = EmbeddingCache(tmp_path / "cache", "small", data.name)
    record = retrieval.run_retrieval(collection_model, tokenizer, data, cache, num_frames=2,
                                     size=36, progress=False, bootstrap=0)  # fmt: skip
    assert record["items"] == {
        "used": 3,
        "missing": 0,
        "failed": 1,
        "total": 4,
        "missing_queries": 0,
    }
    held = cache.videos(collection_model, data.clips, num_frames=2, size=36, progress=False)
    assert held.embedded == 0 and held.ok.tolist() == [True, True, True, False]
    kept = [i for i, clip in enumerate(data.caption_clip) if clip != 3]
    texts = cache.texts(collection_model, tokenizer, [data.captions[i] for i in kept])
    clips = [data.caption_clip[i] for i in kept]
    scores = texts @ held.vectors.T
    t2v = [1 + list(np.argsort(-row)).index(c) for row, c in zip(scores, clips, strict=True)]
    v2t = [1 + min(list(np.argsort(-scores[:, v])).index(i) for i, c in enumerate(clips)
                   if c == v) for v in range(3)]  # fmt: skip
    for direction, rank in (("t2v", np.array(t2v)), ("v2t", np.array(v2t))):
        assert record["metrics"][f"{direction}_R@1"] == pytest.approx(np.mean(rank <= 1))
        assert record["metrics"][f"{direction}_MnR"] == pytest.approx(rank.mean())
        assert record["metrics"][f"{direction}_MdR"] == pytest.approx(np.median(rank))
