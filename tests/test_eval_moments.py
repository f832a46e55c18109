"""`eval moments` (Charades-STA moment retrieval): the windows, each query's top moment
from known window embeddings (planted moments found at IoU ≥ 0.5), the scores by hand,
and the whole run on generated videos with the small model (record, cache, missing)."""

import types

import numpy as np
import pytest

from videoprism_keras.apps.evaluation import grounding, metrics
from videoprism_keras.constants import EVAL_MOMENT_IOUS

DIM = 16


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _planted(duration, moment, clip=4.0, stride=1.0, seed=0, path="v.mp4"):
    """A video whose seconds inside `moment` show content A (axis 0) and the others one of
    a few background contents; each window's vector is the mean of its seconds' contents
    (plus a little noise), as a window mixing two contents embeds between them."""
    rng = np.random.default_rng(seed)
    backgrounds = np.eye(DIM)[[1 + seed % 5, 7, 9]]
    content = lambda t: (np.eye(DIM)[0] if moment[0] <= t < moment[1]  # noqa: E731
                         else backgrounds[int(t // 10) % 3])  # fmt: skip
    spans = grounding.window_spans(duration, clip, stride)
    vectors = []
    for start, end in spans:
        seconds = np.arange(start, end, 0.1) + 0.05
        mixed = np.mean([content(t) for t in seconds], axis=0)
        vectors.append(_unit(mixed + rng.normal(scale=0.02, size=DIM)))
    starts, ends = (np.array(a) for a in zip(*spans, strict=True))
    return grounding.Windows(path, starts, ends, np.array(vectors, np.float32))


def test_window_spans_cut_as_iter_clips_does():
    assert grounding.window_spans(10.0, 4.0, 2.0) == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 10)]
    assert grounding.window_spans(3.0, 4.0, 1.0, fps=10) == [(0, 3), (1, 3), (2, 3)]
    # No window starts after the last frame (at 9.9 s at 10 fps): as `plan_windows`.
    assert grounding.window_spans(10.0, 4.0, 9.95, fps=10) == [(0, 4)]
    with pytest.raises(ValueError, match=r"stride_seconds must be a positive.*Received"):
        grounding.window_spans(10.0, 4.0, 0.0)


@pytest.mark.parametrize("moment", [(10.0, 18.0), (0.0, 6.0), (22.0, 30.0), (12.0, 15.0)])
def test_a_planted_moment_is_found_at_iou_above_one_half(moment):
    videos = [_planted(30.0, moment, seed=1), _planted(30.0, (3.0, 9.0), seed=2, path="w")]
    query = _unit(np.eye(DIM)[0] + 0.05 * np.random.default_rng(3).normal(size=DIM))
    spans = grounding.top_moments(videos, query[None], [0])
    iou = float(metrics.temporal_iou(spans[0], moment))
    assert iou >= 0.5, (spans[0], moment, iou)


def test_each_query_is_grounded_in_its_own_video_and_unread_videos_give_nan():
    videos = [_planted(30.0, (10.0, 18.0), seed=1), None, _planted(30.0, (3.0, 9.0), seed=2)]
    query = _unit(np.eye(DIM)[0])[None].repeat(3, axis=0)
    spans = grounding.top_moments(videos, query, [0, 1, 2])
    assert metrics.temporal_iou(spans[[0, 2]], [(10.0, 18.0), (3.0, 9.0)]).min() >= 0.5
    assert np.isnan(spans[1]).all()


def test_a_flat_curve_predicts_the_whole_video():
    flat = grounding.Windows("f", np.array([0.0, 1.0, 2.0]), np.array([4.0, 5.0, 5.5]),
                             np.tile(_unit(np.eye(DIM)[1]), (3, 1)).astype(np.float32))  # fmt: skip
    other = _planted(30.0, (10.0, 18.0), seed=1)
    spans = grounding.top_moments([flat, other], _unit(np.eye(DIM)[0])[None], [0])
    assert spans[0].tolist() == [0.0, 5.5]


def test_group_windows_gathers_the_ok_rows_of_each_video_by_start():
    clip = lambda p, a=None, b=None: types.SimpleNamespace(path=p, start_s=a, end_s=b)  # noqa: E731
    clips = [clip("a"), clip("b"), clip("c")]
    windows = [clip("a", 2, 6), clip("a", 0, 4), clip("b", 0, 4), clip("c", 0, 4)]
    owner = np.array([0, 0, 1, 2])
    ok = np.array([True, True, False, True])
    vectors = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)  # rows of the ok windows
    got = grounding.group_windows(clips, windows, owner, vectors, ok)
    assert got[0].start_s.tolist() == [0, 2] and got[0].vectors.tolist() == [[2, 3], [0, 1]]
    assert got[1] is None
    assert got[2].path == "c" and got[2].vectors.tolist() == [[4, 5]]


def test_scores_by_hand_skip_unscored_queries_and_bootstrap_brackets_them():
    spans = np.array([[0, 10], [0, 5], [np.nan, np.nan], [5, 15], [20, 30]], np.float64)
    truth = [(0, 10), (0, 10), (0, 10), (0, 10), (0, 10)]
    found, intervals, iou = grounding.score(spans, truth, bootstrap=200, seed=0)
    assert iou.tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.0])
    assert found == pytest.approx(
        {
            "R@1_IoU0.3": 75.0,
            "R@1_IoU0.5": 50.0,
            "R@1_IoU0.7": 25.0,
            "mIoU": 100 * (1.5 + 1 / 3) / 4,
        }
    )
    assert set(intervals) == set(found) == {f"R@1_IoU{t:g}" for t in EVAL_MOMENT_IOUS} | {"mIoU"}
    for name, (low, high) in intervals.items():
        assert 0.0 <= low <= found[name] <= high <= 100.0
    with pytest.raises(ValueError, match="no query could be scored"):
        grounding.score(spans[[2]], truth[:1])
