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
from typing import TYPE_CHECKING

import numpy as np

from ...constants import (
    EVAL_LINEAR_PROBE_LEARNING_RATE,
    EVAL_LINEAR_PROBE_STEPS,
    EVAL_LINEAR_PROBE_WEIGHT_DECAY,
    EVAL_PROBE_BATCH_SIZE,
    EVAL_PROBE_EPOCHS,
    EVAL_PROBE_LEARNING_RATE,
)
from .classification import classification_metrics
from .runs import FAILED_PROTOCOL, make_task_record, resolved_sampling, tell_videos

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from .cache import EmbeddingCache
    from .datasets import Dataset


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


def target_array(targets: Sequence[Sequence[int]], num_classes: int,
                 multi_label: bool) -> np.ndarray:  # fmt: skip
    """Per-item targets (sequences of class indices) → what the probes train on: (N,) int
    (single-label) or (N, C) 0/1 float32 (multi-label)."""
    if not multi_label:
        return np.array([int(t[0]) for t in targets], np.int64)
    out = np.zeros((len(targets), num_classes), np.float32)
    for row, classes in enumerate(targets):
        out[row, [int(c) for c in classes]] = 1.0
    return out


def attentive_scores(backbone: VideoPrismBackbone, train_features: np.ndarray,
                     train_targets: np.ndarray, val_features: np.ndarray, *, num_classes: int,
                     multi_label: bool = False, epochs: int = EVAL_PROBE_EPOCHS,
                     learning_rate: float = EVAL_PROBE_LEARNING_RATE,
                     batch_size: int = EVAL_PROBE_BATCH_SIZE, seed: int = 0,
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
        # float32 whatever the backbone computes in: the head trains on cached features,
        # and a bfloat16 optimizer state would blur what a probe is there to measure.
        model = VideoPrismVideoClassifier(backbone, num_classes, multi_label=multi_label,
                                          dtype="float32")  # fmt: skip
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


def probe_rows(backbone: VideoPrismBackbone, train_features: np.ndarray,
               train_targets: Sequence[Sequence[int]], val_features: np.ndarray,
               val_targets: Sequence[Sequence[int]], *, num_classes: int,
               multi_label: bool = False, epochs: int = EVAL_PROBE_EPOCHS,
               learning_rate: float = EVAL_PROBE_LEARNING_RATE,
               batch_size: int = EVAL_PROBE_BATCH_SIZE, bootstrap: int = 1000, seed: int = 0,
               progress: bool = False) -> dict:  # fmt: skip
    """Both probes on cached features, measured on the validation ones (metrics.py's
    classification metrics through `classification.classification_metrics`, as fractions).

    Args:
        train_targets, val_targets: per item, its class indices (one each unless
            `multi_label`), as `Dataset.targets`.
        bootstrap: int. Resamples of the validation items for the intervals (0: none).
        Others: as `attentive_scores`'.

    Returns:
        {"metrics", "intervals", "losses"}: `attentive_*` and `linear_*` metrics (top1,
        top5, mean_class_accuracy; multi-label: mAP), their intervals, the attentive
        probe's loss per epoch.
    """
    trained_on = target_array(train_targets, num_classes, multi_label)
    attentive, losses = attentive_scores(
        backbone, train_features, trained_on, val_features, num_classes=num_classes,
        multi_label=multi_label, epochs=epochs, learning_rate=learning_rate,
        batch_size=batch_size, seed=seed, progress=progress,
    )  # fmt: skip
    pooled = [np.asarray(f, np.float32).mean(axis=(1, 2)) for f in (train_features, val_features)]
    linear = linear_scores(pooled[0], trained_on, pooled[1], num_classes=num_classes,
                           multi_label=multi_label)  # fmt: skip
    values, intervals = {}, {}
    for prefix, scores in (("attentive_", attentive), ("linear_", linear)):
        got, spans = classification_metrics(scores, val_targets, multi_label=multi_label,
                                            bootstrap=bootstrap, seed=seed)  # fmt: skip
        values.update({prefix + name: value for name, value in got.items()})
        intervals.update({prefix + name: span for name, span in spans.items()})
    return {"metrics": values, "intervals": intervals, "losses": losses}


def run_probe(model: VideoPrismBackbone, train: Dataset, val: Dataset,
              cache: Callable[[Dataset], EmbeddingCache], *, epochs: int = EVAL_PROBE_EPOCHS,
              learning_rate: float = EVAL_PROBE_LEARNING_RATE,
              probe_batch_size: int = EVAL_PROBE_BATCH_SIZE, token_grid: int | None = None,
              batch_size: int = 4, num_frames: int | None = None, size=None, ray=None,
              progress: bool = True, bootstrap: int = 1000, seed: int = 0, encoder=None,
              model_info: dict | None = None,
              log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """The frozen-backbone protocol on a (train, val) pair of classification datasets:
    both datasets' token features through their caches (what a cache holds is not
    embedded again), both probes trained on the training features, measured on the
    validation ones.

    Args:
        model: `VideoPrismBackbone`. The frozen backbone (video tower).
        train: `Dataset`. The labelled clips the probes train on.
        val: `Dataset`. The labelled clips they are measured on; each of its labels must be
            one of `train`'s (by name).
        cache: callable. `cache(dataset)` → the `EmbeddingCache` of this model on that
            dataset, e.g. `lambda d: EmbeddingCache(folder, key, d.name)`.
        epochs: int. The attentive probe's passes over the training clips.
            Defaults to `constants.EVAL_PROBE_EPOCHS`.
        learning_rate: float. Its Adam step size. Defaults to
            `constants.EVAL_PROBE_LEARNING_RATE`.
        probe_batch_size: int. Its clips per step. Defaults to
            `constants.EVAL_PROBE_BATCH_SIZE`.
        token_grid: int or None. Each frame's patches averaged to a grid of this side
            before caching (fewer tokens: less disk and memory); None: every patch.
            Defaults to `None`.
        batch_size, num_frames, size, ray, progress, bootstrap, seed, encoder, model_info,
            log: as `retrieval.run_retrieval`; `seed` also seeds the probe's training.

    Returns:
        The result record (`results.make_record`) of task "probe", on `val`.

    Raises:
        ValueError: a dataset that is not a classification one, `val` labels that `train`
            lacks, or no readable clip in one of them.
    """
    for name, dataset in (("train", train), ("val", val)):
        if dataset.task != "classification" or not dataset.labels:
            raise ValueError(f"{name}: expected a classification dataset (clips with labels). "
                             f"Received: {dataset.name}, a {dataset.task} dataset with "
                             f"{len(dataset.labels)} labels")  # fmt: skip
    if train.multi_label != val.multi_label:
        raise ValueError(f"train and val: expected both single-label or both multi-label. "
                         f"Received: train multi_label={train.multi_label}, val "
                         f"multi_label={val.multi_label}")  # fmt: skip
    mapping = label_mapping(train.labels, val.labels, train_name=f"train ({train.annotations})",
                            val_name=f"val ({val.annotations})")  # fmt: skip
    frames, frame_size = resolved_sampling(model, num_frames, size)
    features, targets, caches, failed = [], [], [], {}
    for name, dataset in (("train", train), ("val", val)):
        caches.append(cache(dataset))
        cached = caches[-1].videos(model, dataset.clips, kind="features", num_frames=frames,
                                   size=frame_size, batch_size=batch_size,
                                   token_grid=token_grid, ray=ray, progress=progress,
                                   encoder=encoder)  # fmt: skip
        ok = np.asarray(cached.ok, bool)
        if not ok.any():
            raise ValueError(f"{dataset.annotations}: none of its {len(ok)} videos could be "
                             f"read (first: {cached.failures[0][0]}: "
                             f"{cached.failures[0][1]})")  # fmt: skip
        tell_videos(log, cached, len(ok))
        features.append(cached.vectors)
        targets.append([t for t, keep in zip(dataset.targets, ok, strict=True) if keep])
        failed[name] = len(cached.failures)
    val_targets = [tuple(int(mapping[c]) for c in t) for t in targets[1]]
    if log:
        log(f"probes: attentive ({epochs} epochs) and linear, on {len(targets[0])} clips")
    rows = probe_rows(model, features[0], targets[0], features[1], val_targets,
                      num_classes=len(train.labels), multi_label=train.multi_label,
                      epochs=epochs, learning_rate=learning_rate, batch_size=probe_batch_size,
                      bootstrap=bootstrap, seed=seed, progress=progress)  # fmt: skip
    settings = {
        "train": {"name": train.name, "annotations": str(train.annotations),
                  "used": len(targets[0]), "missing": len(train.missing),
                  "failed": failed["train"], "total": train.total},
        "labels": len(train.labels), "multi_label": bool(train.multi_label),
        "token_grid": token_grid,
        "tokens": list(features[0].shape[1:3]),  # (frames, tokens per frame) trained on
        "attentive": {"epochs": epochs, "learning_rate": learning_rate,
                      "batch_size": probe_batch_size, "losses": rows["losses"],
                      "head": "the classifier's attention pooler and linear head"},
        "linear": {"steps": EVAL_LINEAR_PROBE_STEPS,
                   "learning_rate": EVAL_LINEAR_PROBE_LEARNING_RATE,
                   "weight_decay": EVAL_LINEAR_PROBE_WEIGHT_DECAY,
                   "features": "mean over all tokens, standardised on train"},
        "failed": FAILED_PROTOCOL,
    }  # fmt: skip
    return make_task_record("probe", val, rows["metrics"], rows["intervals"], model, caches[1],
                            model_info, frames, frame_size, bootstrap, seed, settings,
                            failed["val"])  # fmt: skip
