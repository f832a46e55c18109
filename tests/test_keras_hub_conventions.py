"""keras_hub's conventions: configs, the preset loader both ways, `token_embedding`; and
presets written before the projections were layers of their own."""

from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, random_text, random_video, to_numpy

import videoprism_keras as vp

pytestmark = pytest.mark.backend
LEGACY = Path(__file__).parent / "data" / "legacy_preset_lvt"


def test_a_video_only_config_with_auxiliary_layers_builds_without_them():
    # keras_hub's own test config for a video-only model says num_auxiliary_layers=1.
    plain = vp.VideoPrismBackbone(**TINY)
    model = vp.VideoPrismBackbone(**{**TINY, "num_auxiliary_layers": 1})
    assert model.auxiliary_encoder is None and model.get_config()["num_auxiliary_layers"] == 1
    model.set_weights(plain.get_weights())  # the same weights: nothing was added
    np.testing.assert_array_equal(to_numpy(model(random_video())), to_numpy(plain(random_video())))


def test_token_embedding_is_the_text_table_or_none():
    assert vp.VideoPrismBackbone(**TINY).token_embedding is None
    lvt = vp.VideoPrismBackbone(**TINY_LVT)
    assert isinstance(lvt.token_embedding, keras.layers.Embedding)
    assert lvt.token_embedding.embeddings.shape == (50, 16)


def test_keras_hub_preset_loader_reads_our_presets(tmp_path):
    preset_utils = pytest.importorskip("keras_hub.src.utils.preset_utils")
    model = vp.VideoPrismBackbone(**TINY_LVT)
    model.save_to_preset(tmp_path / "float")
    loaded = preset_utils.get_preset_loader(str(tmp_path / "float")).load_backbone(
        vp.VideoPrismBackbone, load_weights=True
    )
    assert type(loaded) is vp.VideoPrismBackbone
    ids, mask = random_text(batch=2)
    np.testing.assert_array_equal(
        to_numpy(loaded.encode_text(ids, mask)), to_numpy(model.encode_text(ids, mask))
    )
    # Not a quantized preset: keras_hub 0.32's `load_backbone` replaces the saved dtype (the
    # policy map that says which layers are quantized) with its `dtype` argument, None
    # included. `VideoPrismBackbone.from_preset` keeps it (tests/test_quantization.py).


def test_configs_round_trip_with_keras_hub():
    keras_hub = pytest.importorskip("keras_hub")
    ours = vp.VideoPrismBackbone(**{**TINY_LVT, "intermediate_dim": 64})
    theirs = keras_hub.models.VideoPrismBackbone.from_config(ours.get_config())
    again = vp.VideoPrismBackbone.from_config(theirs.get_config())
    assert again.get_config() == ours.get_config()
    assert theirs.count_params() == ours.count_params() + 2 * 16  # its extra text LayerNorm
    assert theirs.token_embedding is None  # keras_hub's own answer, even for LvT


def test_presets_saved_before_projection_layers_still_load():
    # Written by the previous layout (every projection weight on its owner layer).
    model = vp.VideoPrismBackbone.from_preset(LEGACY)
    expected = np.load(LEGACY / "expected.npz")
    video = model.encode_video(expected["pixel_values"])["vision_embeddings"]
    text = model.encode_text(expected["token_ids"], expected["padding_mask"])
    np.testing.assert_allclose(to_numpy(video), expected["vision_embeddings"], atol=1e-6)
    np.testing.assert_allclose(to_numpy(text), expected["text_embeddings"], atol=1e-6)
