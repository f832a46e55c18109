"""`eval probe`: the frozen-backbone protocol (attentive probe) and the pooled linear probe
beside it, on a generated set that only attention can separate, and from the CLI."""

import numpy as np
import pytest
from helpers import TINY

import videoprism_keras as vp
from videoprism_keras.apps.evaluation import probe

HIDDEN, TOKENS = 32, 8


def _marked_tokens(n, seed):
    """(n, 1, TOKENS, HIDDEN) features and their classes (0 or 1). Every token is Gaussian
    noise; one, at a random place, carries a marker m plus s·u (s = +1 for class 0, -1 for
    class 1), another the opposite, -s·u. The tokens' mean is then noise + m/TOKENS
    whatever the class (identically distributed: a linear probe on it is at chance), while
    attention that finds the marked token reads s off it."""
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(HIDDEN, HIDDEN)))[0]
    marker, direction = 4.0 * basis[0], 3.0 * basis[1]
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, TOKENS, HIDDEN)).astype(np.float32)
    classes = rng.integers(0, 2, n)
    for row, cls in enumerate(classes):
        sign = 1.0 if cls == 0 else -1.0
        marked, other = rng.choice(TOKENS, 2, replace=False)
        features[row, marked] += marker + sign * direction
        features[row, other] -= sign * direction
    return features[:, None], classes


def test_attention_separates_what_pooling_cannot():
    train_x, train_y = _marked_tokens(400, seed=1)
    val_x, val_y = _marked_tokens(200, seed=2)
    # Identical class means after pooling, by construction (up to sampling noise).
    pooled = train_x.mean(axis=(1, 2))
    gap = pooled[train_y == 0].mean(axis=0) - pooled[train_y == 1].mean(axis=0)
    assert np.abs(gap).max() < 0.15
    # A tiny backbone only sets the pooler's width (HIDDEN) and heads; it never runs.
    backbone = vp.VideoPrismBackbone(**{**TINY, "hidden_dim": HIDDEN, "intermediate_dim": HIDDEN})
    rows = probe.probe_rows(backbone, train_x, train_y, val_x, val_y, num_classes=2, epochs=10,
                            learning_rate=3e-3, batch_size=32, bootstrap=200)  # fmt: skip
    got = rows["metrics"]
    assert got["attentive_top1"] >= 0.9 and got["attentive_mean_class_accuracy"] >= 0.9
    assert got["linear_top1"] <= 0.65 and got["linear_mean_class_accuracy"] <= 0.65
    low, high = rows["intervals"]["attentive_top1"]
    assert low <= got["attentive_top1"] <= high and high - low < 0.1
    assert backbone.trainable  # the probe froze it only while it trained
    assert len(rows["losses"]) == 10 and rows["losses"][-1] < 0.5 * rows["losses"][0]


def test_linear_probe_separates_what_pooling_keeps_and_is_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 2
    y = np.arange(90) % 3
    x = centres[y] + rng.normal(size=(90, 16))
    first = probe.linear_scores(x[:60], y[:60], x[60:], num_classes=3)
    assert (first.argmax(axis=1) == y[60:]).mean() >= 0.9
    assert np.array_equal(first, probe.linear_scores(x[:60], y[:60], x[60:], num_classes=3))
    # Multi-label: each class an independent sigmoid on its own feature.
    targets = (rng.normal(size=(120, 3)) > 0).astype(np.float32)
    features = np.concatenate([targets * 2 + rng.normal(size=(120, 3)) * 0.5,
                               rng.normal(size=(120, 5))], axis=1)  # fmt: skip
    scores = probe.linear_scores(features[:80], targets[:80], features[80:], num_classes=3,
                                 multi_label=True)  # fmt: skip
    values, _ = probe.score_metrics(scores, targets[80:], multi_label=True, prefix="linear_",
                                    bootstrap=0)  # fmt: skip
    assert set(values) == {"linear_mAP"} and values["linear_mAP"] > 0.9


def test_metrics_are_fractions_with_intervals_around_them():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = np.array([0, 1, 1, 2])
    values, intervals = probe.score_metrics(scores, labels, prefix="attentive_", bootstrap=300)
    expected = {"attentive_top1": 0.75, "attentive_top5": 1.0,
                "attentive_mean_class_accuracy": (1 + 0.5 + 1) / 3}  # fmt: skip
    assert values == pytest.approx(expected)
    assert set(intervals) == set(values)
    for name, (low, high) in intervals.items():
        assert 0.0 <= low <= values[name] <= high <= 1.0
    assert intervals == probe.score_metrics(scores, labels, prefix="attentive_",
                                            bootstrap=300)[1]  # seeded  # fmt: skip


def test_validation_labels_must_be_training_labels():
    assert probe.label_mapping(["a", "b", "c"], ["c", "a"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="val has d, e, which train has not"):
        probe.label_mapping(["a", "b"], ["a", "d", "e"])
    mapped = probe.target_array([(1,), (0, 1)], 3, True, mapping=np.array([2, 0]))
    assert mapped.tolist() == [[1, 0, 0], [1, 0, 1]]
    assert probe.target_array([(1,), (0,)], 3, False, np.array([2, 0])).tolist() == [0, 2]
