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

Memory: the token features of a benchmark's training set need not fit in memory. They
stay in the cache (stored in float16) and are read a batch at a time (`CachedRows`): the
attentive probe trains on batches read in each epoch's shuffled order and made float32
one batch at a time, its validation scores are computed batch by batch, and the linear
probe's pooled features (one vector per clip, small) are pooled a chunk at a time. What
is held at once is one batch of token features, the pooled features and the scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...constants import (
    EVAL_BOOTSTRAP_SAMPLES,
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
    from ...runtime import Encoder
    from .cache import EmbeddingCache
    from .datasets import Dataset


class Rows(Protocol):
    """Token features, (N, T, P, D), read by position: a numpy array, or the cache's
    `CachedRows` (read a batch at a time, never all held)."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, indices: Any) -> np.ndarray: ...


def check_pair(train: Dataset, val: Dataset, *, train_name: str = "train",
               val_name: str = "val") -> np.ndarray:  # fmt: skip
    """A (train, val) pair a probe can run on, checked before any embedding: both
    classification datasets, both single-label or both multi-label, each of `val`'s labels
    one of `train`'s, and no clip (path and span) in both (a probe measured on clips it
    trained on measures its memory).

    Args:
        train: `Dataset`. The training set.
        val: `Dataset`. The validation set.
        train_name: str. How messages name the training set. Defaults to "train".
        val_name: str. How messages name the validation set. Defaults to "val".

    Returns:
        For each of `val`'s labels, its index among `train`'s (`label_mapping`).

    Raises:
        ValueError: what does not fit, naming the set(s).
    """
    for name, dataset in ((train_name, train), (val_name, val)):
        if dataset.task != "classification" or not dataset.labels:
            raise ValueError(f"{name}: expected a classification dataset (clips with labels). "
                             f"Received: {dataset.name}, a {dataset.task} dataset with "
                             f"{len(dataset.labels)} labels")  # fmt: skip
    if train.multi_label != val.multi_label:
        kinds = {True: "multi-label", False: "single-label"}
        raise ValueError(f"{train_name} and {val_name}: expected both single-label or both "
                         f"multi-label. Received: {train_name} is {kinds[train.multi_label]}, "
                         f"{val_name} {kinds[val.multi_label]}")  # fmt: skip
    mapping = label_mapping(train.labels, val.labels, train_name=train_name, val_name=val_name)
    trained = {clip.key for clip in train.clips}
    shared = [clip for clip in val.clips if clip.key in trained]
    if shared:
        raise ValueError(f"{train_name} and {val_name}: expected no clip in both (a probe "
                         f"measured on clips it trained on). Received: {len(shared)} shared, "
                         f"the first {shared[0].path}")  # fmt: skip
    return mapping


def label_mapping(train_labels: Sequence[str], val_labels: Sequence[str], *,
                  train_name: str = "train", val_name: str = "val") -> np.ndarray:  # fmt: skip
    """For each of the validation set's labels, its index among the training set's.

    Args:
        train_labels: sequence of str. The training set's class names.
        val_labels: sequence of str. The validation set's.
        train_name: str. How the message names the training set. Defaults to "train".
        val_name: str. How it names the validation set. Defaults to "val".

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
    (single-label) or (N, C) 0/1 float32 (multi-label).

    Args:
        targets: sequence of sequences of int. Each item's class indices.
        num_classes: int. C.
        multi_label: bool. Several classes an item.
    """
    if not multi_label:
        return np.array([int(t[0]) for t in targets], np.int64)
    out = np.zeros((len(targets), num_classes), np.float32)
    for row, classes in enumerate(targets):
        out[row, [int(c) for c in classes]] = 1.0
    return out


def attentive_scores(backbone: VideoPrismBackbone, train_features: Rows,
                     train_targets: np.ndarray, val_features: Rows, *, num_classes: int,
                     multi_label: bool = False, epochs: int = EVAL_PROBE_EPOCHS,
                     learning_rate: float = EVAL_PROBE_LEARNING_RATE,
                     batch_size: int = EVAL_PROBE_BATCH_SIZE, seed: int = 0,
                     progress: bool = False) -> tuple[np.ndarray, list[float]]:  # fmt: skip
    """The attentive probe: our classifier's pooler and head trained on the training
    features, then its logits on the validation ones; the features are read a batch at a
    time and made float32 a batch at a time (the module's "Memory").

    Args:
        backbone: `VideoPrismBackbone`. Sets the pooler's width and heads; it does not run
            (and keeps its `trainable` flag).
        train_features: `Rows`, (N, T, P, D). Cached token features to train on.
        train_targets: (N,) int or (N, C) 0/1 array (`target_array`).
        val_features: `Rows`, (M, T, P, D). Those to score.
        num_classes: int. The head's classes.
        multi_label: bool. Sigmoid classes. Defaults to `False`.
        epochs: int. Passes over the training items, each in a new shuffled order.
            Defaults to `constants.EVAL_PROBE_EPOCHS`.
        learning_rate: float. Adam's step size. Defaults to
            `constants.EVAL_PROBE_LEARNING_RATE`.
        batch_size: int. Items per step (and per scoring call). Defaults to
            `constants.EVAL_PROBE_BATCH_SIZE`.
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
        train = _batches(train_features, batch_size, np.asarray(train_targets))
        losses = fit(model, train, epochs=epochs, learning_rate=learning_rate,
                     batch_size=batch_size, progress=progress)  # fmt: skip
        logits = model.predict(_batches(val_features, batch_size), verbose=0)
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
        train_pooled: (N, D) array. Pooled features to train on.
        train_targets: (N,) int or (N, C) 0/1 array (`target_array`).
        val_pooled: (M, D) array. Those to score.
        num_classes: int. C.
        multi_label: bool. Per-class sigmoids. Defaults to `False`.
        steps: int. Full-batch Adam steps. Defaults to `constants.EVAL_LINEAR_PROBE_STEPS`.
        learning_rate: float. Adam's step size. Defaults to
            `constants.EVAL_LINEAR_PROBE_LEARNING_RATE`.
        weight_decay: float. The weights' L2 penalty. Defaults to
            `constants.EVAL_LINEAR_PROBE_WEIGHT_DECAY`.

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


def _batches(features: Rows, batch_size: int, targets: np.ndarray | None = None) -> Any:
    """A Keras dataset of `{"features"}` batches (float32, made a batch at a time) read
    from `features`; with `targets`, (inputs, targets) in a shuffled order, a new one each
    epoch, drawn from numpy's global generator as Keras draws its own for arrays (the
    same seed trains in the same order as `model.fit` on the arrays); without, in order."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.arange(len(features))  # a new one as each epoch begins

        def shuffled(self):
            if targets is None:
                return np.arange(len(features))
            return np.random.permutation(len(features))  # noqa: NPY002 (as Keras draws it)

        def __len__(self):
            return math.ceil(len(features) / batch_size)

        def __getitem__(self, index):
            at = self.order[index * batch_size : (index + 1) * batch_size]
            inputs = {"features": np.asarray(features[at], np.float32)}
            return inputs if targets is None else (inputs, targets[at])

        def on_epoch_begin(self):
            # Keras begins one to build the model from a first batch (for arrays it draws
            # an order there too), then each epoch: the same draws as `model.fit` on
            # arrays, so that a seed trains in the same order.
            self.order = self.shuffled()

    return Batches()


def pooled_features(features: Rows, chunk: int = EVAL_PROBE_BATCH_SIZE) -> np.ndarray:
    """The tokens' mean of each item, (N, D) float32, a chunk of items at a time.

    Args:
        features: `Rows`, (N, T, P, D). Token features.
        chunk: int. Items read at a time. Defaults to `constants.EVAL_PROBE_BATCH_SIZE`.
    """
    out = np.empty((len(features), features.shape[-1]), np.float32)
    for start in range(0, len(features), chunk):
        at = np.arange(start, min(start + chunk, len(features)))
        out[at] = np.asarray(features[at], np.float32).mean(axis=(1, 2))
    return out


def _probabilities(logits, multi_label):
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def probe_rows(backbone: VideoPrismBackbone, train_features: Rows,
               train_targets: Sequence[Sequence[int]], val_features: Rows,
               val_targets: Sequence[Sequence[int]], *, num_classes: int,
               multi_label: bool = False, epochs: int = EVAL_PROBE_EPOCHS,
               learning_rate: float = EVAL_PROBE_LEARNING_RATE,
               batch_size: int = EVAL_PROBE_BATCH_SIZE,
               bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0,
               progress: bool = False) -> dict:  # fmt: skip
    """Both probes on cached features, measured on the validation ones (metrics.py's
    classification metrics through `classification.classification_metrics`, as fractions).
    The features are read a batch (or a chunk) at a time (the module's "Memory").

    Args:
        backbone: `VideoPrismBackbone`. As `attentive_scores`'.
        train_features: `Rows`, (N, T, P, D). Token features to train on.
        train_targets: sequence of sequences of int. Per training item, its class
            indices (one each unless `multi_label`), as `Dataset.targets`.
        val_features: `Rows`, (M, T, P, D). Token features to measure on.
        val_targets: sequence of sequences of int. Per validation item, its classes.
        num_classes: int. The classes.
        multi_label: bool. Several classes an item. Defaults to `False`.
        epochs: int. As `attentive_scores`'. Defaults to `constants.EVAL_PROBE_EPOCHS`.
        learning_rate: float. As `attentive_scores`'. Defaults to
            `constants.EVAL_PROBE_LEARNING_RATE`.
        batch_size: int. As `attentive_scores`'; also the linear probe's pooling chunk.
            Defaults to `constants.EVAL_PROBE_BATCH_SIZE`.
        bootstrap: int. Resamples of the validation items for the intervals (0: none).
            Defaults to 1000.
        seed: int. Seeds the bootstrap and the attentive probe's training. Defaults to 0.
        progress: bool. A bar over the training steps. Defaults to `False`.

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
    pooled = [pooled_features(f, batch_size) for f in (train_features, val_features)]
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
              batch_size: int = 4, num_frames: int | None = None,
              size: int | Sequence[int] | None = None, ray: bool | str | None = None,
              progress: bool = True, bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0,
              encoder: Encoder | None = None, model_info: dict | None = None,
              log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """The frozen-backbone protocol on a (train, val) pair of classification datasets:
    both datasets' token features through their caches (what a cache holds is not
    embedded again), both probes trained on the training features, measured on the
    validation ones. The features are read from the caches a batch at a time, never all
    held (the module's "Memory").

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
        batch_size: int. Clips per model call while embedding. Defaults to 4.
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        ray: None, True or str. Embed on Ray (`EmbeddingCache.videos`). Defaults to None.
        progress: bool. Progress bars. Defaults to True.
        bootstrap: int. Bootstrap resamples for the intervals (0: none). Defaults to 1000.
        seed: int. Seeds the bootstrap and the probes' training. Defaults to 0.
        encoder: `Encoder` or None. The compiled model calls. Defaults to None.
        model_info: dict or None. The record's "model" (`results.model_info`). Defaults
            to None.
        log: callable or None. Told what is done, a line at a time. Defaults to None.

    Returns:
        The result record (`results.make_record`) of task "probe", on `val`.

    Raises:
        ValueError: what `check_pair` refuses (before any embedding), or no readable clip
            in one of the datasets.
    """
    mapping = check_pair(train, val, train_name=f"train ({train.annotations})",
                         val_name=f"val ({val.annotations})")  # fmt: skip
    frames, frame_size = resolved_sampling(model, num_frames, size)
    features, targets, caches, failed = [], [], [], {}
    for name, dataset in (("train", train), ("val", val)):
        caches.append(cache(dataset))
        cached = caches[-1].videos(model, dataset.clips, kind="features", num_frames=frames,
                                   size=frame_size, batch_size=batch_size,
                                   token_grid=token_grid, ray=ray, progress=progress,
                                   encoder=encoder, read=False)  # fmt: skip
        ok = np.asarray(cached.ok, bool)
        if not ok.any():
            raise ValueError(f"{dataset.annotations}: none of its {len(ok)} videos could be "
                             f"read (first: {cached.failures[0][0]}: "
                             f"{cached.failures[0][1]})")  # fmt: skip
        tell_videos(log, cached, len(ok))
        features.append(cached.rows)
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
