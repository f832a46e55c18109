"""Dtype policies (maps included) and quantization, the Keras way, on every backend."""

import warnings

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, random_text, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.model.projection import Projection, TokenEmbedding

pytestmark = pytest.mark.backend


def _copy(model, **overrides):
    """A float copy of `model` (quantize changes a model in place)."""
    new = type(model).from_config({**model.get_config(), **overrides})
    new.set_weights(model.get_weights())
    return new


def _outputs(model):
    ids, mask = random_text(batch=2)
    return {
        "video": to_numpy(model.encode_video(random_video(batch=2))["vision_embeddings"]),
        "text": to_numpy(model.encode_text(ids, mask)),
    }


def _min_cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(
        np.min(np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1))
    )


@pytest.fixture(scope="module")
def lvt():
    keras.utils.set_random_seed(1)
    return vp.VideoPrismBackbone(**TINY_LVT)


def test_a_dtype_policy_map_gives_each_layer_its_own_policy(lvt):
    default = _copy(lvt, dtype=keras.dtype_policies.DTypePolicyMap("float32"))
    for expected, got in zip(_outputs(lvt).values(), _outputs(default).values(), strict=True):
        np.testing.assert_array_equal(got, expected)  # an empty map is float32 exactly
    policies = keras.dtype_policies.DTypePolicyMap("float32")
    policies["video_encoder/spatial_encoder/.*"] = "bfloat16"
    mixed = _copy(lvt, dtype=policies)
    block = mixed.video_encoder.spatial_encoder.blocks[0]
    assert block.mlp.in_proj.compute_dtype == "bfloat16"
    assert block.mlp.in_proj.kernel.dtype == "bfloat16"
    assert mixed.video_encoder.temporal_encoder.blocks[0].mlp.in_proj.compute_dtype == "float32"
    assert _min_cosine(_outputs(mixed)["video"], _outputs(lvt)["video"]) > 0.99
    # The map survives get_config / from_config.
    again = type(mixed).from_config(mixed.get_config())
    assert again.video_encoder.spatial_encoder.blocks[1].attention.qkv_proj.compute_dtype == (
        "bfloat16"
    )


@pytest.mark.parametrize("mode, cosine", [("int8", 0.999), ("int4", 0.95), ("float8", 0.95)])
def test_quantize_touches_the_projections_and_embedding_only(lvt, mode, cosine):
    model = _copy(lvt)
    with warnings.catch_warnings():
        # No "Layer LayerNorm does not have a `quantize` method" noise.
        warnings.filterwarnings("error", message=".*quantize.*")
        model.quantize(mode)
    quantized = {type(layer) for layer in model._flatten_layers() if layer.quantization_mode}
    assert quantized == ({Projection, TokenEmbedding} if mode != "float8" else {Projection})
    qkv = model.video_encoder.spatial_encoder.blocks[0].attention.qkv_proj
    assert qkv.quantization_mode == mode and qkv.dtype_policy.name.startswith(mode)
    if mode != "float8":
        assert keras.backend.standardize_dtype(qkv._kernel.dtype) == "int8"
    for name, value in _outputs(model).items():
        assert _min_cosine(value, _outputs(lvt)[name]) > cosine, name


def test_quantize_under_a_policy_map_and_bad_modes(lvt):
    model = _copy(lvt, dtype=keras.dtype_policies.DTypePolicyMap("float32"))
    model.quantize("int8")  # Keras' own Dense.quantize fails under a map; ours does not
    assert model.video_pooler.kv_proj.quantization_mode == "int8"
    assert model.dtype_policy["video_pooler/kv_proj"].name == "int8_from_float32"
    assert _min_cosine(_outputs(model)["video"], _outputs(lvt)["video"]) > 0.999
    with pytest.raises(ValueError, match="already quantized"):
        model.quantize("int8")
    with pytest.raises(ValueError, match="int3"):
        _copy(lvt).quantize("int3")
    with pytest.raises(ValueError, match="before quantize"):
        vp.export_flax_checkpoint(model)


def test_quantized_models_save_and_load(lvt, tmp_path):
    model = _copy(lvt)
    model.quantize("int8")
    expected = _outputs(model)
    config_dtype = model.get_config()["dtype"]
    assert config_dtype["class_name"] == "DTypePolicyMap"  # keras_hub's convention
    model.save(tmp_path / "model.keras")
    for loaded in (
        keras.saving.load_model(tmp_path / "model.keras"),
        _saved_preset(model, tmp_path / "preset"),
    ):
        assert loaded.video_encoder.patch_proj.quantization_mode == "int8"
        for name, value in _outputs(loaded).items():
            np.testing.assert_allclose(value, expected[name], atol=1e-6)
    # A quantized preset in another compute dtype: quantized layers stay quantized.
    bf16 = vp.VideoPrismBackbone.from_preset(tmp_path / "preset", dtype="bfloat16")
    proj = bf16.text_encoder.transformer.blocks[0].mlp.out_proj
    assert proj.quantization_mode == "int8" and proj.compute_dtype == "bfloat16"
    assert bf16.text_encoder.norm.compute_dtype == "bfloat16"
    assert _min_cosine(_outputs(bf16)["text"], expected["text"]) > 0.99


def _saved_preset(model, path):
    model.save_to_preset(path)
    return vp.VideoPrismBackbone.from_preset(path)


def test_classifier_quantizes_and_saves(tmp_path):
    backbone = vp.VideoPrismBackbone(**TINY)
    classifier = vp.VideoPrismVideoClassifier(backbone, num_classes=3)
    video = random_video()
    reference = to_numpy(classifier(video))
    classifier.quantize("int8")
    assert classifier.head.quantization_mode == "int8"
    assert classifier.pooler.kv_proj.quantization_mode == "int8"
    assert backbone.video_encoder.spatial_encoder.blocks[0].mlp.in_proj.quantization_mode == "int8"
    logits = to_numpy(classifier(video))
    np.testing.assert_allclose(logits, reference, atol=0.05 * np.abs(reference).max())
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert loaded.backbone.video_encoder.patch_proj.quantization_mode == "int8"
    np.testing.assert_allclose(to_numpy(loaded(video)), logits, atol=1e-6)
