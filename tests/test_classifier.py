"""VideoPrismVideoClassifier: the official FactorizedVideoClassifier, trainable."""

import keras
import numpy as np
import pytest
from helpers import TINY, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.runtime import sigmoid, softmax

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def golden(golden_dir):
    model = vp.VideoPrismVideoClassifier.from_flax_checkpoint(
        golden_dir / "classifier_small.ckpt.npz", attention_logit_soft_cap=5.0
    )
    return model, dict(np.load(golden_dir / "classifier_small.io.npz"))


def test_matches_official_logits_and_embeddings(golden):
    model, io = golden
    np.testing.assert_allclose(to_numpy(model(io["pixel_values"])), io["logits"], atol=1e-4)
    np.testing.assert_allclose(
        to_numpy(model.embed(io["pixel_values"])), io["global_embeddings"], atol=1e-4
    )
    assert model.num_classes == 5 and model.backbone.num_spatial_layers == 2


def test_cached_features_give_the_same_logits(golden):
    model, io = golden
    features = model.extract_features(io["pixel_values"])
    np.testing.assert_allclose(to_numpy(model({"features": features})), io["logits"], atol=1e-5)


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_fit_on_cached_features_lowers_the_loss(multi_label):
    model = vp.VideoPrismVideoClassifier(
        vp.VideoPrismBackbone(**TINY), num_classes=3, multi_label=multi_label
    )
    backbone_before = [to_numpy(w) for w in model.backbone.weights]
    videos = random_video(batch=6, seed=3)
    labels = np.array([0, 1, 2, 0, 1, 2])
    targets = np.eye(3, dtype="float32")[labels] if multi_label else labels
    features = to_numpy(model.extract_features(videos))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit({"features": features}, targets, epochs=60, batch_size=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]  # six clips are memorised (any seed: < 0.1x)
    for before, after in zip(backbone_before, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))  # frozen
    proba = model.predict_proba(videos, verbose=0)
    assert proba.shape == (6, 3)
    logits = model.predict(videos, verbose=0)
    expected = sigmoid(logits) if multi_label else softmax(logits)  # shared with zero-shot
    np.testing.assert_allclose(proba, expected, rtol=1e-6)
    if not multi_label:
        np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)


def test_freezing_acts_on_the_backbone_passed_in():
    backbone = vp.VideoPrismBackbone(**TINY)
    vp.VideoPrismVideoClassifier(backbone, num_classes=2)
    assert backbone.trainable is False  # documented: a shared backbone is frozen for all
    model = vp.VideoPrismVideoClassifier(backbone, num_classes=2, freeze_backbone=False)
    assert backbone.trainable is True and model.backbone is backbone
    assert len(model.trainable_weights) > len(model.pooler.weights) + 2


def test_fit_end_to_end_on_pixels():
    model = vp.VideoPrismVideoClassifier(vp.VideoPrismBackbone(**TINY), num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(
        random_video(batch=4), np.array([0, 1, 0, 1]), epochs=3, batch_size=4, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()


def test_save_and_load(tmp_path, golden):
    model, io = golden
    model.save(tmp_path / "clf.keras")
    loaded = keras.saving.load_model(tmp_path / "clf.keras")
    np.testing.assert_allclose(to_numpy(loaded(io["pixel_values"])), io["logits"], atol=1e-5)
    assert loaded.backbone.trainable is False


def test_not_a_classifier_checkpoint(golden_dir):
    with pytest.raises(ValueError, match="projection"):
        vp.VideoPrismVideoClassifier.from_flax_checkpoint(golden_dir / "video_small.ckpt.npz")
