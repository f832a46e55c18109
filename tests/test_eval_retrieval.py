"""`eval retrieval`'s metrics from embeddings, against ranks worked out by hand and by
sorting: text→video (each caption finds its clip), video→text (a clip found by any of
its captions), the bootstrap intervals; and `run_retrieval` on a stand-in cache: clips
that fail to decode leave with their captions and are counted."""

import types

import numpy as np
import pytest

from videoprism_keras.apps.evaluation import retrieval


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
    assert record["items"] == {"used": 2, "missing": 1, "failed": 1, "total": 4}
    assert record["sampling"] == {"num_frames": 2, "size": 36}
    assert record["settings"]["captions"] == 3
    assert "excluded" in record["settings"]["failed"]
    assert lines == ["skipped /v/clip1.mp4: not a video",
                     "videos: 2 embedded, 0 from the cache, 1 failed"]  # fmt: skip


def test_run_refuses_a_classification_dataset():
    with pytest.raises(ValueError, match="expected a retrieval dataset"):
        retrieval.run_retrieval(stand_in_model(), None, dataset(task="classification",
                                                                captions=[], caption_clip=[]),
                                StandInCache(VIDEOS, {}))  # fmt: skip
