"""The evaluation metrics against independent computations on tiny score matrices: ranks by
sorting, R@k and ranks by hand, mAP by the definition, per-class accuracy by counting; ties
counted against the query (a constant model scores nothing), non-finite scores refused, and
the bootstrap drawing again where a statistic is undefined."""

import numpy as np
import pytest

from videoprism_keras.apps.evaluation import metrics

SCORES = np.array(
    [
        [0.9, 0.1, 0.3, 0.2],  # query 0: relevant 0 → rank 1
        [0.2, 0.8, 0.9, 0.1],  # query 1: relevant 1 → rank 2 (2 above it)
        [0.5, 0.6, 0.1, 0.7],  # query 2: relevant 2 → rank 4
        [0.1, 0.2, 0.3, 0.4],  # query 3: relevant {0, 2} → best is 2 (0.3) → rank 2
    ]
)
RELEVANT = [[0], [1], [2], [0, 2]]


def test_ranks_equal_the_positions_after_sorting():
    got = metrics.ranks(SCORES, RELEVANT)
    by_sorting = []
    for row, found in zip(SCORES, RELEVANT, strict=True):
        order = list(np.argsort(-row, kind="stable"))
        by_sorting.append(1 + min(order.index(i) for i in found))
    assert got.tolist() == by_sorting == [1, 2, 4, 2]


def test_recall_and_ranks_by_hand():
    got = metrics.retrieval(np.array([1, 2, 4, 2]), ks=(1, 2, 5))
    assert got == {"R@1": 0.25, "R@2": 0.75, "R@5": 1.0, "MdR": 2.0, "MnR": 2.25}


def test_ties_count_against_the_query_but_its_other_relevant_items_do_not():
    assert metrics.ranks([[0.5, 0.5, 0.5]], [[2]]).tolist() == [3]
    assert metrics.ranks([[0.5, 0.5, 0.5]], [[0, 2]]).tolist() == [2]
    assert metrics.ranks([[0.9, 0.5, 0.9]], [[0, 2]]).tolist() == [1]


def test_a_constant_model_scores_nothing():
    constant = np.full((6, 6), 0.25)
    rank = metrics.ranks(constant, [[q] for q in range(6)])
    assert metrics.retrieval(rank, ks=(1, 5))["R@1"] == 0.0
    assert rank.tolist() == [6] * 6
    labels = [0, 1, 2, 0, 1, 2]
    assert metrics.top_k(constant, labels, ks=(1,)) == {"top1": 0.0}
    assert metrics.mean_class_accuracy(constant, labels) == 0.0
    # AP with every item tied: the precision of the whole list, the positives' share.
    positive = np.array([1, 0, 0, 1, 0, 0], bool)
    assert metrics.average_precision(constant[:, 0], positive) == pytest.approx(2 / 6)


def test_mean_class_accuracy_counts_a_tied_first_place_as_a_miss():
    # argmax would pick class 0 for item 1 (first of the tie) and call it a hit.
    scores = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    assert metrics.mean_class_accuracy(scores, [0, 0, 1]) == pytest.approx((1 / 2 + 1) / 2)
    assert metrics.top_k(scores, [0, 0, 1], ks=(1, 2)) == {"top1": 2 / 3, "top2": 1.0}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", [
    lambda s: metrics.ranks(s, [[0], [1]]),
    lambda s: metrics.top_k(s, [0, 1]),
    lambda s: metrics.mean_class_accuracy(s, [0, 1]),
    lambda s: metrics.mean_average_precision(s, np.eye(2)),
])  # fmt: skip
def test_non_finite_scores_are_refused_naming_the_argument(call, bad):
    scores = np.array([[0.9, 0.1], [0.2, bad]])
    says = r"scores: expected finite scores\. Received: .* at \[1, 1\]"
    with pytest.raises(ValueError, match=says):
        call(scores)


def test_top_k_and_mean_class_accuracy_by_counting():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.5, 0.4]])
    labels = [0, 1, 1, 2]  # hits at top-1: yes, yes, no, no; class 2 is 2nd for item 3
    assert metrics.top_k(scores, labels, ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}
    # per class: 0 → 1/1, 1 → 1/2, 2 → 0/1
    assert metrics.mean_class_accuracy(scores, labels) == pytest.approx((1 + 0.5 + 0) / 3)


def _ap_by_definition(scores, positive):
    order = np.argsort(-scores, kind="stable")
    hits, precisions = 0, []
    for seen, i in enumerate(order, start=1):
        if positive[i]:
            hits += 1
            precisions.append(hits / seen)
    return float(np.mean(precisions))


def test_map_equals_the_definition_on_distinct_scores():
    rng = np.random.default_rng(0)
    scores = rng.permutation(40).reshape(10, 4) / 40.0  # distinct: no ties
    targets = rng.random((10, 4)) < 0.4
    targets[:, 3] = False  # a class without positives is left out
    targets[0, :3] = True
    expected = np.mean([_ap_by_definition(scores[:, k], targets[:, k]) for k in range(3)])
    assert metrics.mean_average_precision(scores, targets) == pytest.approx(expected)


def test_bootstrap_interval_holds_the_estimate_and_is_reproducible():
    hit = np.array([1.0] * 30 + [0.0] * 70)
    low, high = metrics.bootstrap_interval(lambda idx: 100 * hit[idx].mean(), len(hit))
    assert low < 30.0 < high and high - low < 25.0
    assert (low, high) == metrics.bootstrap_interval(lambda idx: 100 * hit[idx].mean(), len(hit))


def test_resamples_where_the_statistic_is_undefined_are_drawn_again():
    # A rare positive: many resamples of 20 items miss it, and mAP is NaN there.
    scores = np.linspace(1.0, 0.0, 20)[:, None]
    targets = np.zeros((20, 1), bool)
    targets[0] = True
    calls, undefined = [], []

    def statistic(idx):
        value = metrics.mean_average_precision(scores[idx], targets[idx])
        calls.append(value)
        undefined.append(np.isnan(value))
        return value

    low, high = metrics.bootstrap_interval(statistic, 20, samples=200, seed=0)
    assert sum(undefined) > 0  # some were NaN (each miss has chance (19/20)**20 ≈ 0.36)
    assert len(calls) == 200 + sum(undefined)  # each drawn again: 200 values kept
    assert np.isfinite([low, high]).all() and low == high == 1.0  # the positive ranks first


def test_a_statistic_undefined_almost_everywhere_is_refused():
    with pytest.raises(ValueError, match=r"statistic: expected a value on most resamples.*NaN"):
        metrics.bootstrap_interval(lambda idx: float("nan"), 5, samples=3)


@pytest.mark.parametrize("call, words", [
    (lambda: metrics.ranks([[0.1, 0.2]], [[]]), "relevant[0]: expected at least one"),
    (lambda: metrics.ranks([[0.1, 0.2]], [[0], [1]]), "one list per query (1)"),
    (lambda: metrics.ranks(np.zeros(3), [[0]]), "scores: expected a non-empty 2-D array"),
    (lambda: metrics.mean_average_precision(np.zeros((2, 2)), np.zeros((2, 3))),
     "targets: expected the scores' shape"),
    (lambda: metrics.bootstrap_interval(lambda idx: 0.0, 0), "items: expected at least 1"),
    (lambda: metrics.ranks([[0.1, 0.2]], [[2]]), "relevant[0]: expected candidates in [0, 2)"),
])  # fmt: skip
def test_bad_input_is_a_clear_error(call, words):
    with pytest.raises(ValueError, match="Received") as err:
        call()
    assert words in str(err.value)


# ---- moments: temporal IoU and R@1 at IoU thresholds, by hand


def test_temporal_iou_by_hand():
    predicted = [[0, 10], [0, 10], [5, 15], [20, 30], [2, 4], [3, 3], [3, 3]]
    truth = [[0, 10], [0, 5], [0, 10], [0, 10], [0, 10], [3, 3], [0, 10]]
    # same, half inside, 5 of 15 shared, disjoint, inside (2 of 10), one instant twice,
    # an instant inside a span (no length: no overlap)
    expected = [1.0, 0.5, 5 / 15, 0.0, 0.2, 1.0, 0.0]
    assert metrics.temporal_iou(predicted, truth) == pytest.approx(expected)
    assert float(metrics.temporal_iou([4, 6], [5, 9])) == pytest.approx(1 / 5)


def test_temporal_iou_refuses_mismatched_or_backwards_spans():
    with pytest.raises(ValueError, match=r"one shape \(N, 2\).*Received: \(1, 2\) and \(2, 2\)"):
        metrics.temporal_iou([[0, 1]], [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="end >= start"):
        metrics.temporal_iou([[2, 1]], [[0, 1]])


def test_moment_recall_counts_queries_at_or_above_each_threshold():
    iou = [0.3, 0.5, 0.69, 0.7, 0.0]
    got = metrics.moment_recall(iou, (0.3, 0.5, 0.7))
    assert got == pytest.approx({"R@1_IoU0.3": 0.8, "R@1_IoU0.5": 0.6, "R@1_IoU0.7": 0.2,
                                 "mIoU": sum(iou) / 5})  # fmt: skip
    with pytest.raises(ValueError, match="at least one"):
        metrics.moment_recall([], (0.5,))
