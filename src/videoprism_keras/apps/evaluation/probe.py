"""The frozen-backbone protocol (VideoGLUE's attentive probe), with a linear probe beside it.

    train, val `Dataset`s ─ cache.videos(kind="features"): once per (model, dataset)
      ─→ token features (N, T, P, D)
      ─ attentive: `VideoPrismVideoClassifier` on `{"features"}` (its attention pooler
        and head train, `classifier_training.fit`; the backbone never runs again)
      ─ linear: the tokens' mean (N, D), standardised, a softmax (multi-label: sigmoid)
        regression
      ─→ validation scores ─ metrics.py, bootstrap ─→ `attentive_*` and `linear_*`

The second row is the pooled linear probe that outside harnesses run: it sees only the
tokens' mean, so what lives in a few tokens among many (where in the clip, when an
action happens) averages away there, and not under attention. Both rows train on the
same cached features, so the difference between them is the protocol's alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...constants import (
    EVAL_LINEAR_PROBE_LEARNING_RATE,
    EVAL_LINEAR_PROBE_STEPS,
    EVAL_LINEAR_PROBE_WEIGHT_DECAY,
)
from . import metrics

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone


def label_mapping(train_labels: Sequence[str], val_labels: Sequence[str], *,
                  train_name: str = "train", val_name: str = "val") -> np.ndarray:  # fmt: skip
    """For each of the validation set's labels, its index among the training set's.

    Raises:
        ValueError: a validation label the training set lacks (a class no head learnt),
            naming them.
    """
    where = {str(label): i for i, label in enumerate(train_labels)}
    lacking = [str(label) for label in val_labels if str(label) not in where]
    if lacking:
        shown = ", ".join(lacking[:10]) + (f" and {len(lacking) - 10} more" if len(lacking) > 10
                                           else "")  # fmt: skip
        raise ValueError(f"{val_name}'s labels must all be labels of {train_name}: a probe "
                         f"cannot predict a class it never saw. Received: {val_name} has "
                         f"{shown}, which {train_name} has not")  # fmt: skip
    return np.array([where[str(label)] for label in val_labels], np.int64)


def target_array(targets: Sequence[Sequence[int]], num_classes: int, multi_label: bool,
                 mapping: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Per-item targets (tuples of class indices) → (N,) int (single-label) or (N, C) 0/1
    float32 (multi-label); `mapping` re-indexes them (`label_mapping`)."""
    remap = (lambda i: int(mapping[i])) if mapping is not None else int
    if not multi_label:
        return np.array([remap(t[0]) for t in targets], np.int64)
    out = np.zeros((len(targets), num_classes), np.float32)
    for row, classes in enumerate(targets):
        out[row, [remap(c) for c in classes]] = 1.0
    return out


def attentive_scores(backbone: VideoPrismBackbone, train_features: np.ndarray,
                     train_targets: np.ndarray, val_features: np.ndarray, *, num_classes: int,
                     multi_label: bool = False, epochs: int = 20, learning_rate: float = 1e-3,
                     batch_size: int = 32, seed: int = 0,
                     progress: bool = False) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """The attentive probe: our classifier's pooler and head trained on the training
    features, then its logits on the validation ones.

    Args:
        backbone: `VideoPrismBackbone`. Sets the pooler's width and heads; it does not run
            (and keeps its `trainable` flag).
        train_features, val_features: (N, T, P, D) arrays. Cached token features.
        train_targets: (N,) int or (N, C) 0/1 array (`target_array`).
        num_classes: int. The head's classes.
        multi_label: bool. Sigmoid classes. Defaults to `False`.
        epochs, learning_rate, batch_size: the training's (`classifier_training.fit`).
        seed: int. Seeds the head's initialisation and the shuffling. Defaults to `0`.
        progress: bool. A bar over the training steps. Defaults to `False`.

    Returns:
        (validation logits (N, C) float32, the loss of each epoch).
    """
    import keras

    from ...classifier import VideoPrismVideoClassifier
    from ...classifier_training import fit

    keras.utils.set_random_seed(seed)
    trainable = backbone.trainable  # the classifier freezes the object it is given
    try:
        model = VideoPrismVideoClassifier(backbone, num_classes, multi_label=multi_label)
        features = np.asarray(train_features, np.float32)
        losses = fit(model, {"features": features}, train_targets, epochs=epochs,
                     learning_rate=learning_rate, batch_size=batch_size,
                     progress=progress)  # fmt: skip
        val = {"features": np.asarray(val_features, np.float32)}
        logits = model.predict(val, batch_size=batch_size, verbose=0)
    finally:
        backbone.trainable = trainable
    return np.asarray(logits, np.float32), losses


def linear_scores(train_pooled: np.ndarray, train_targets: np.ndarray, val_pooled: np.ndarray,
                  *, num_classes: int, multi_label: bool = False,
                  steps: int = EVAL_LINEAR_PROBE_STEPS,
                  learning_rate: float = EVAL_LINEAR_PROBE_LEARNING_RATE,
                  weight_decay: float = EVAL_LINEAR_PROBE_WEIGHT_DECAY) -> np.ndarray:  # fmt: skip
    """The linear probe: a softmax (multi-label: per-class sigmoid) regression on
    standardised pooled features, full-batch Adam from zero weights (deterministic: the
    same data gives the same scores), then its logits on the validation features.

    Args:
        train_pooled, val_pooled: (N, D) arrays. Pooled features.
        train_targets: (N,) int or (N, C) 0/1 array (`target_array`).
        num_classes: int.
        multi_label: bool. Defaults to `False`.
        steps, learning_rate, weight_decay: the regression's (constants.py's defaults).

    Returns:
        (N, C) float32 validation logits.
    """
    x = np.asarray(train_pooled, np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6  # a constant feature stays 0
    x = (x - mean) / std
    if multi_label:
        y = np.asarray(train_targets, np.float32)
    else:
        y = np.zeros((len(x), num_classes), np.float32)
        y[np.arange(len(x)), np.asarray(train_targets, np.int64)] = 1.0
    weights = [np.zeros((x.shape[1], num_classes), np.float32),
               np.zeros(num_classes, np.float32)]  # fmt: skip
    moments = [[np.zeros_like(w), np.zeros_like(w)] for w in weights]
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        logits = x @ weights[0] + weights[1]
        error = (_probabilities(logits, multi_label) - y) / len(x)  # d(mean loss)/d logits
        grads = [x.T @ error + weight_decay * weights[0], error.sum(axis=0)]
        for w, g, (m, v) in zip(weights, grads, moments, strict=True):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
            w -= learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    val = (np.asarray(val_pooled, np.float32) - mean) / std
    return (val @ weights[0] + weights[1]).astype(np.float32)


def _probabilities(logits, multi_label):
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def score_metrics(scores: np.ndarray, targets: np.ndarray, *, multi_label: bool = False,
                  prefix: str = "", bootstrap: int = 1000, seed: int = 0,
                  level: float = 0.95,
                  ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:  # fmt: skip
    """Classification metrics of validation `scores` (metrics.py's, as fractions) and
    their bootstrap intervals over the items, names prefixed with `prefix`.

    Single-label: top1, top5, mean_class_accuracy; multi-label: mAP. `bootstrap` 0: no
    intervals.
    """
    scores = np.asarray(scores, np.float64)
    if multi_label:
        targets = np.asarray(targets, bool)
        statistics = {"mAP": lambda idx: metrics.mean_average_precision(scores[idx],
                                                                        targets[idx])}  # fmt: skip
    else:
        targets = np.asarray(targets, np.int64)
        # Each item's rank once: top-k of a resample is the R@k of its ranks (one relevant
        # class per item), without ranking the classes again for every resample.
        rank = metrics.ranks(scores, [[t] for t in targets])
        statistics = {
            "top1": lambda idx: metrics.retrieval(rank[idx], ks=(1,))["R@1"],
            "top5": lambda idx: metrics.retrieval(rank[idx], ks=(5,))["R@5"],
            "mean_class_accuracy": lambda idx: metrics.mean_class_accuracy(scores[idx],
                                                                           targets[idx]),
        }  # fmt: skip
    everything = np.arange(len(scores))
    values, intervals = {}, {}
    for name, statistic in statistics.items():
        values[prefix + name] = statistic(everything) / 100.0  # metrics.py answers in percent
        if bootstrap:
            low, high = metrics.bootstrap_interval(statistic, len(scores), samples=bootstrap,
                                                   level=level, seed=seed)  # fmt: skip
            intervals[prefix + name] = (low / 100.0, high / 100.0)
    return values, intervals


def probe_rows(backbone: VideoPrismBackbone, train_features: np.ndarray,
               train_targets: np.ndarray, val_features: np.ndarray, val_targets: np.ndarray, *,
               num_classes: int, multi_label: bool = False, epochs: int = 20,
               learning_rate: float = 1e-3, batch_size: int = 32, bootstrap: int = 1000,
               seed: int = 0, progress: bool = False,
               on_stage: Callable[[str], Any] | None = None) -> dict:  # fmt: skip
    """Both probes on cached features, measured on the validation ones: {"metrics",
    "intervals", "losses"} with `attentive_*` and `linear_*` metrics (arguments as
    `attentive_scores`'; `on_stage(name)` is called as each probe starts)."""
    stage = on_stage or (lambda name: None)
    stage("attentive")
    attentive, losses = attentive_scores(
        backbone, train_features, train_targets, val_features, num_classes=num_classes,
        multi_label=multi_label, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, progress=progress,
    )  # fmt: skip
    stage("linear")
    pooled = [np.asarray(f, np.float32).mean(axis=(1, 2)) for f in (train_features, val_features)]
    linear = linear_scores(pooled[0], train_targets, pooled[1], num_classes=num_classes,
                           multi_label=multi_label)  # fmt: skip
    values, intervals = {}, {}
    for prefix, scores in (("attentive_", attentive), ("linear_", linear)):
        got, spans = score_metrics(scores, val_targets, multi_label=multi_label, prefix=prefix,
                                   bootstrap=bootstrap, seed=seed)  # fmt: skip
        values.update(got)
        intervals.update(spans)
    return {"metrics": values, "intervals": intervals, "losses": losses}
