"""The metrics of the paper's benchmarks, from a score matrix: retrieval (R@k, median and
mean rank), classification (top-k, mean per-class accuracy, mAP for multi-label sets) and
a bootstrap interval over the evaluated items. Numpy only: no model, no Keras.

Rates (R@k, accuracies, mAP, IoU) are fractions in [0, 1], as the result records hold
them (a report shows them in percent); ranks are ranks.

Ranks are 1-based, and a query's rank is that of its best-ranked relevant item (a video
with several captions is found by any of them, as MSR-VTT, VATEX and ActivityNet
retrieval count it). Ties count in the query's favour: only items scored strictly higher
rank before it, so a result does not depend on the order items were listed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def _matrix(scores, name: str) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"{name}: expected a non-empty 2-D array (items × candidates). "
                         f"Received: shape {scores.shape}")  # fmt: skip
    return scores


def ranks(scores, relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """Each query's rank: 1 + the candidates scored strictly higher than its best
    relevant one.

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
        out[q] = 1 + int((scores[q] > scores[q, found].max()).sum())
    return out


def retrieval(rank: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """R@k (the fraction of queries ranked within k), median and mean rank."""
    rank = np.asarray(rank)
    metrics = {f"R@{k}": float((rank <= k).mean()) for k in ks}
    return {**metrics, "MdR": float(np.median(rank)), "MnR": float(rank.mean())}


def top_k(scores, labels: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy as a fraction (single-label classification)."""
    rank = ranks(scores, [[int(label)] for label in labels])
    return {f"top{k}": float((rank <= k).mean()) for k in ks}


def mean_class_accuracy(scores, labels: Sequence[int]) -> float:
    """Top-1 accuracy of each class present in `labels`, averaged over those classes
    (a fraction): large classes do not dominate."""
    labels = np.asarray(labels, np.int64)
    hit = _matrix(scores, "scores").argmax(axis=1) == labels
    return float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """The average precision of one class: the mean, over its positives, of the precision
    among the items scored at least as high (ties count in the positives' favour)."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    if not positive.any():
        raise ValueError("positive: expected at least one positive item. Received: none")
    higher_or_equal = scores[None, :] >= scores[positive][:, None]  # positives × items
    above = higher_or_equal.sum(axis=1)
    positives_above = (higher_or_equal & positive[None, :]).sum(axis=1)
    return float(np.mean(positives_above / above))


def mean_average_precision(scores, targets) -> float:
    """mAP (a fraction) over the classes with at least one positive (multi-label sets
    such as Charades).

    Args:
        scores: (N, K) array. Item × class scores.
        targets: (N, K) array of 0/1. Which classes each item has.
    """
    scores, targets = _matrix(scores, "scores"), np.asarray(targets, bool)
    if targets.shape != scores.shape:
        raise ValueError(f"targets: expected the scores' shape {scores.shape}. "
                         f"Received: {targets.shape}")  # fmt: skip
    present = np.flatnonzero(targets.any(axis=0))
    return float(np.mean([average_precision(scores[:, k], targets[:, k]) for k in present]))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], items: int, *,
                       samples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """A percentile bootstrap interval of `statistic` over the evaluated items.

    Args:
        statistic: callable. Given the indices of a resample of the items (with
            repeats), the metric on them.
        items: int. How many items were evaluated.
        samples: int. Resamples. Defaults to 1000.
        level: float. The interval's coverage. Defaults to 0.95.
        seed: int. The resamples' seed (the interval is reproducible). Defaults to 0.

    Returns:
        (low, high).
    """
    if items < 1:
        raise ValueError(f"items: expected at least 1. Received: {items}")
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, items, items)) for _ in range(samples)]
    tail = 100.0 * (1.0 - level) / 2
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


# ---- moments (Charades-STA): a predicted span against the annotated one


def temporal_iou(predicted, truth) -> np.ndarray:
    """The intersection over union of time spans, pair by pair: the overlap's length over
    the length both cover. Disjoint spans give 0; a span of no length gives 1 against
    itself and 0 against any other.

    Args:
        predicted: (N, 2) array or one (start, end) pair, in seconds.
        truth: the same shape: the annotated spans.

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


def moment_recall(iou, thresholds: Sequence[float]) -> dict[str, float]:
    """R@1 at each IoU threshold (the fraction of queries whose top moment overlaps the
    annotation at least that much) and the mean IoU (mIoU), from each query's
    top-1 IoU."""
    iou = np.asarray(iou, np.float64).reshape(-1)
    if not len(iou):
        raise ValueError("moment_recall: expected at least one query's IoU. Received: none")
    metrics = {f"R@1_IoU{t:g}": float((iou >= t).mean()) for t in thresholds}
    return {**metrics, "mIoU": float(iou.mean())}
