"""The metrics of the paper's benchmarks, from a score matrix: retrieval (R@k, median and
mean rank), classification (top-k, mean per-class accuracy, mAP for multi-label sets) and
a bootstrap interval over the evaluated items. Numpy only: no model, no Keras.

Rates (R@k, accuracies, mAP, IoU) are fractions in [0, 1], as the result records hold
them (a report shows them in percent); ranks are ranks.

Ranks are 1-based, and a query's rank is that of its best-ranked relevant item (a video
with several captions is found by any of them, as MSR-VTT, VATEX and ActivityNet
retrieval count it). Ties count AGAINST the query: every other candidate scored at least
as high as its best relevant one ranks before it (its other relevant ones do not), and
top-k accuracy, mean per-class accuracy and average precision count the same way. So a
result does not depend on the order items were listed in, and a model that scores
everything alike (a constant or collapsed one) scores nothing rather than everything.
Non-finite scores are refused: a NaN compares false with everything and would rank first.

Bootstrap intervals resample the evaluated items; a resample on which a statistic is
undefined (NaN: a multi-label resample with no positive of any class) is drawn again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ...constants import EVAL_BOOTSTRAP_SAMPLES, EVAL_INTERVAL_LEVEL

RECALL_KS = (1, 5, 10)
# Redraws allowed per resample whose statistic is NaN, over all resamples, before the
# interval is given up as undefined: a statistic undefined that often is not an estimate.
_REDRAWS_PER_SAMPLE = 10


def _matrix(scores: ArrayLike, name: str) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"{name}: expected a non-empty 2-D array (items × candidates). "
                         f"Received: shape {scores.shape}")  # fmt: skip
    bad = ~np.isfinite(scores)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{name}: expected finite scores. Received: {scores[row, column]} at "
                         f"[{row}, {column}] ({int(bad.sum())} non-finite)")  # fmt: skip
    return scores


def ranks(scores: ArrayLike, relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """Each query's rank: 1 + the other candidates scored at least as high as its best
    relevant one (ties count against it; its other relevant ones are not counted).

    Args:
        scores: (Q, C) array. Query × candidate similarities.
        relevant: Q sequences of int. The relevant candidates of each query (at least one).

    Returns:
        (Q,) int array of 1-based ranks.
    """
    scores = _matrix(scores, "scores")
    if len(relevant) != len(scores):
        raise ValueError(f"relevant: expected one list per query ({len(scores)}). "
                         f"Received: {len(relevant)}")  # fmt: skip
    out = np.empty(len(scores), np.int64)
    for q, found in enumerate(relevant):
        found = np.asarray(found, np.int64)
        if not len(found):
            raise ValueError(f"relevant[{q}]: expected at least one relevant candidate. "
                             "Received: none")  # fmt: skip
        if found.min() < 0 or found.max() >= scores.shape[1]:
            raise ValueError(f"relevant[{q}]: expected candidates in [0, {scores.shape[1]}). "
                             f"Received: {found.tolist()}")  # fmt: skip
        best = int(found[np.argmax(scores[q, found])])
        others = np.ones(scores.shape[1], bool)
        others[found] = False
        out[q] = 1 + int((scores[q, others] >= scores[q, best]).sum())
    return out


def retrieval(rank: ArrayLike, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """R@k (the fraction of queries ranked within k), median and mean rank.

    Args:
        rank: (Q,) int array. Each query's rank (`ranks`).
        ks: sequence of int. The k of each R@k. Defaults to `RECALL_KS`.

    Returns:
        {"R@k": fraction for each k, "MdR": median rank, "MnR": mean rank}.
    """
    rank = np.asarray(rank)
    metrics = {f"R@{k}": float((rank <= k).mean()) for k in ks}
    return {**metrics, "MdR": float(np.median(rank)), "MnR": float(rank.mean())}


def label_ranks(scores: ArrayLike, labels: Sequence[int]) -> np.ndarray:
    """Each item's rank of its one label (single-label classification), by `ranks`.

    Args:
        scores: (N, K) array. Item × class scores.
        labels: N ints. Each item's class.

    Returns:
        (N,) int array of 1-based ranks.
    """
    return ranks(scores, [[int(label)] for label in labels])


def top_k(scores: ArrayLike, labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy as a fraction (single-label classification): the items whose label
    ranks within k (`ranks`: a tie with another class is a miss).

    Args:
        scores: (N, K) array. Item × class scores.
        labels: N ints. Each item's class.
        ks: sequence of int. The k of each top-k. Defaults to (1, 5).

    Returns:
        {"topk": fraction for each k}.
    """
    rank = label_ranks(scores, labels)
    return {f"top{k}": float((rank <= k).mean()) for k in ks}


def mean_class_accuracy(scores: ArrayLike, labels: Sequence[int]) -> float:
    """Top-1 accuracy of each class present in `labels`, averaged over those classes
    (a fraction): large classes do not dominate. A hit is a label ranked first (`ranks`:
    a tie with another class is a miss).

    Args:
        scores: (N, K) array. Item × class scores.
        labels: N ints. Each item's class.

    Returns:
        The mean per-class accuracy.
    """
    return class_accuracy(label_ranks(scores, labels), labels)


def class_accuracy(rank: ArrayLike, labels: Sequence[int]) -> float:
    """Mean per-class accuracy from each item's label rank (`label_ranks`): a resample
    need not rank again.

    Args:
        rank: (N,) int array. Each item's rank of its label.
        labels: N ints. Each item's class.

    Returns:
        The mean, over the classes present, of the fraction of their items ranked first.
    """
    labels, hit = np.asarray(labels, np.int64), np.asarray(rank) == 1
    return float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))


def average_precision(scores: ArrayLike, positive: ArrayLike) -> float:
    """The average precision of one class: the mean, over its positives, of the precision
    among the items scored at least as high (ties count against the positives: a tied
    negative ranks above them).

    Args:
        scores: (N,) array. Each item's score for the class.
        positive: (N,) bool array. Which items have the class.

    Returns:
        The average precision (a fraction).
    """
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError(f"scores: expected a 1-D array of finite scores. Received: shape "
                         f"{scores.shape}, {int((~np.isfinite(scores)).sum())} "
                         "non-finite")  # fmt: skip
    if not positive.any():
        raise ValueError("positive: expected at least one positive item. Received: none")
    higher_or_equal = scores[None, :] >= scores[positive][:, None]  # positives × items
    above = higher_or_equal.sum(axis=1)
    positives_above = (higher_or_equal & positive[None, :]).sum(axis=1)
    return float(np.mean(positives_above / above))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """mAP (a fraction) over the classes with at least one positive (multi-label sets
    such as Charades).

    Args:
        scores: (N, K) array. Item × class scores.
        targets: (N, K) array of 0/1. Which classes each item has.

    Returns:
        The mAP; NaN when no class has a positive (undefined: a bootstrap redraws it).
    """
    scores, targets = _matrix(scores, "scores"), np.asarray(targets, bool)
    if targets.shape != scores.shape:
        raise ValueError(f"targets: expected the scores' shape {scores.shape}. "
                         f"Received: {targets.shape}")  # fmt: skip
    present = np.flatnonzero(targets.any(axis=0))
    if not len(present):
        return float("nan")
    return float(np.mean([average_precision(scores[:, k], targets[:, k]) for k in present]))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], items: int, *,
                       samples: int = EVAL_BOOTSTRAP_SAMPLES,
                       level: float = EVAL_INTERVAL_LEVEL,
                       seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """A percentile bootstrap interval of `statistic` over the evaluated items.

    A resample on which `statistic` is NaN (undefined there) is drawn again, so the
    interval holds defined values only; a statistic undefined on too many resamples
    raises.

    Args:
        statistic: callable. Given the indices of a resample of the items (with
            repeats), the metric on them.
        items: int. How many items were evaluated.
        samples: int. Resamples. Defaults to `EVAL_BOOTSTRAP_SAMPLES`.
        level: float. The interval's coverage. Defaults to `EVAL_INTERVAL_LEVEL`.
        seed: int. The resamples' seed (the interval is reproducible). Defaults to 0.

    Returns:
        (low, high).
    """
    if items < 1:
        raise ValueError(f"items: expected at least 1. Received: {items}")
    if samples < 1:
        raise ValueError(f"samples: expected at least 1. Received: {samples}")
    rng = np.random.default_rng(seed)
    values: list[float] = []
    redraws = 0
    while len(values) < samples:
        value = float(statistic(rng.integers(0, items, items)))
        if not np.isnan(value):
            values.append(value)
            continue
        redraws += 1
        if redraws > _REDRAWS_PER_SAMPLE * samples:
            raise ValueError(f"statistic: expected a value on most resamples of the "
                             f"{items} items. Received: NaN on {redraws} of "
                             f"{redraws + len(values)}")  # fmt: skip
    tail = 100.0 * (1.0 - level) / 2
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


# ---- moments (Charades-STA): a predicted span against the annotated one


def temporal_iou(predicted: ArrayLike, truth: ArrayLike) -> np.ndarray:
    """The intersection over union of time spans, pair by pair: the overlap's length over
    the length both cover. Disjoint spans give 0; a span of no length gives 1 against
    itself and 0 against any other.

    Args:
        predicted: (N, 2) array or one (start, end) pair, in seconds.
        truth: (N, 2) array or one pair, the same shape: the annotated spans.

    Returns:
        (N,) float array in [0, 1] (a 0-d array for one pair).
    """
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.shape != truth.shape or predicted.shape[-1:] != (2,):
        raise ValueError(f"temporal_iou: expected predicted and truth of one shape (N, 2). "
                         f"Received: {predicted.shape} and {truth.shape}")  # fmt: skip
    if (predicted[..., 1] < predicted[..., 0]).any() or (truth[..., 1] < truth[..., 0]).any():
        raise ValueError("temporal_iou: expected spans with end >= start. Received: a span "
                         "ending before it starts")  # fmt: skip
    (a, b), (c, d) = np.moveaxis(predicted, -1, 0), np.moveaxis(truth, -1, 0)
    overlap = np.maximum(np.minimum(b, d) - np.maximum(a, c), 0.0)
    union = np.maximum(b, d) - np.minimum(a, c)
    same = union <= 0  # both spans are the one instant
    return np.where(same, 1.0, overlap / np.where(same, 1.0, union))


def moment_recall(iou: ArrayLike, thresholds: Sequence[float]) -> dict[str, float]:
    """R@1 at each IoU threshold (the fraction of queries whose top moment overlaps the
    annotation at least that much) and the mean IoU (mIoU), from each query's
    top-1 IoU.

    Args:
        iou: (Q,) array. Each query's top moment's IoU with its annotation.
        thresholds: sequence of float. The IoU thresholds.

    Returns:
        {"R@1_IoU<t>": fraction for each threshold, "mIoU": mean IoU}.
    """
    iou = np.asarray(iou, np.float64).reshape(-1)
    if not len(iou):
        raise ValueError("moment_recall: expected at least one query's IoU. Received: none")
    metrics = {f"R@1_IoU{t:g}": float((iou >= t).mean()) for t in thresholds}
    return {**metrics, "mIoU": float(iou.mean())}
