"""LoRA (keras_hub's way) and per-block rematerialisation on the backbone."""

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, gradients, outputs, random_text, random_video
from keras import ops

from videoprism_keras import VideoPrismBackbone

# One layer per stack: XLA compiles each model these tests run, in proportion to its depth.
CONFIG = dict(TINY_LVT, num_spatial_layers=1, num_text_layers=1)

VIDEO = random_video()
IDS, MASK = random_text(batch=2)
INPUTS = {"pixel_values": VIDEO, "token_ids": IDS, "padding_mask": MASK}


def _outputs(model):
    return outputs(model, INPUTS)


def _hand_count(rank):
    """r · (in + out) per adapted projection of CONFIG (D 16, MLP 32, text MLP 64,
    pooler inner width 4·D = 64)."""
    d, mlp, text_mlp, inner = 16, 32, 64, 64
    vision_block = (d + 3 * d) + (d + d) + (d + mlp) + (mlp + d)
    text_block = (d + 3 * d) + (d + d) + (d + text_mlp) + (text_mlp + d)
    pooler = (d + inner) + (d + 2 * inner) + (inner + d)
    vision_blocks = 1 + 1 + 1  # spatial, temporal, auxiliary
    return rank * (vision_blocks * vision_block + text_block + pooler)


@pytest.mark.backend
def test_lora_trains_only_the_adapters_and_starts_at_the_base_outputs(tmp_path):
    model = VideoPrismBackbone(**CONFIG)
    base = _outputs(model)
    model.enable_lora(2)
    trainable = model.trainable_variables
    assert sum(int(np.prod(v.shape)) for v in trainable) == _hand_count(2) == 2272
    assert all("lora_kernel" in v.path for v in trainable)
    for key, value in _outputs(model).items():
        np.testing.assert_array_equal(value, base[key])  # B starts at zero: exactly the base

    # Trained adapters: save alone, load into a fresh model, merge.
    rng = np.random.default_rng(1)
    for v in trainable:
        v.assign(0.1 * rng.standard_normal(v.shape).astype("float32"))
    tuned = _outputs(model)
    assert max(np.abs(tuned[k] - base[k]).max() for k in base) > 1e-3
    path = tmp_path / "adapters.lora.h5"
    model.save_lora_weights(path)
    assert path.stat().st_size < 200_000

    other = VideoPrismBackbone(**CONFIG)
    for src, dst in zip(_base_weights(model), _base_weights(other), strict=True):
        dst.assign(src)
    other.load_lora_weights(path)  # enables LoRA of the saved rank on the same layers
    for key, value in _outputs(other).items():
        np.testing.assert_allclose(value, tuned[key], atol=1e-6)

    model.merge_lora_weights()
    assert not any("lora" in v.path for v in model.weights)
    for key, value in _outputs(model).items():
        np.testing.assert_allclose(value, tuned[key], atol=1e-5)


@pytest.mark.backend
def test_lora_in_training_equals_the_merged_kernel():
    # Training adds s·(x·A)·B beside the frozen kernel; inference (and Dense) uses the
    # merged W + s·A·B: the same outputs and the same adapter gradients.
    model = VideoPrismBackbone(**CONFIG)
    model.enable_lora(2)
    rng = np.random.default_rng(2)
    for v in model.trainable_variables:
        v.assign(0.1 * rng.standard_normal(v.shape).astype("float32"))
    weights = ops.arange(16, dtype="float32")

    def run(training):
        def loss():
            out = model(INPUTS, training=training)
            return ops.sum(out["vision_embeddings"] * weights) + ops.sum(
                out["text_embeddings"] ** 3
            )

        return gradients(model.trainable_variables, loss)

    for a, b in zip(run(True), run(False), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    trained = outputs(model, INPUTS, training=True)
    for key, value in _outputs(model).items():
        np.testing.assert_allclose(trained[key], value, atol=1e-5)


def _base_weights(model):
    return [v for v in model.weights if "lora_kernel" not in v.path]


def test_lora_errors_name_what_was_expected(tmp_path):
    model = VideoPrismBackbone(**CONFIG)
    with pytest.raises(ValueError, match="positive integer"):
        model.enable_lora(0)
    with pytest.raises(ValueError, match="no LoRA to save"):
        model.save_lora_weights(tmp_path / "a.lora.h5")
    with pytest.raises(ValueError, match="no layer of the model is named"):
        model.enable_lora(2, target_names=["nope"])
    model.enable_lora(2, target_names=["qkv_proj"])
    with pytest.raises(ValueError, match=r"\.lora\.h5"):
        model.save_lora_weights(tmp_path / "a.h5")
    model.save_lora_weights(tmp_path / "a.lora.h5")
    with pytest.raises(ValueError, match="already enabled"):
        model.enable_lora(2)
    full = VideoPrismBackbone(**CONFIG)
    full.enable_lora(4)
    with pytest.raises(ValueError, match="does not fit this model"):
        full.load_lora_weights(tmp_path / "a.lora.h5")


@pytest.mark.backend
def test_remat_gives_the_same_gradients():
    # With dropout, the recomputation must draw the forward pass's masks again; without
    # dropout the same check is a weaker one, so it is not run on its own.
    dropout = 0.3

    def grads(remat):
        keras.utils.set_random_seed(0)
        model = VideoPrismBackbone(**CONFIG, remat=remat, dropout_rate=dropout,
                                   attention_dropout_rate=dropout)  # fmt: skip
        weights = ops.arange(16, dtype="float32")

        def loss():
            out = model(INPUTS, training=True)
            return ops.sum(out["vision_embeddings"] * weights) + ops.sum(
                out["text_embeddings"] ** 3
            )

        return model, gradients(model.trainable_variables, loss)

    _, plain = grads(False)
    model, remat = grads(True)
    assert len(plain) == len(model.trainable_variables) == 70
    for a, b in zip(plain, remat, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    config = model.get_config()
    assert config["remat"] is True
    assert VideoPrismBackbone.from_config(config).text_encoder.transformer.remat
    assert "remat" not in VideoPrismBackbone(**CONFIG).get_config()  # keras_hub-readable


def test_remat_lowers_the_compiled_peak_memory_on_jax():
    # JAX only (the unmarked tests run in its pass): XLA's CPU compiler undoes
    # jax.checkpoint, so remat is spelled out (model/kernels.remat); its own measure of
    # the program's temporary buffers shows the activations no longer all kept.
    import jax

    assert keras.backend.backend() == "jax"
    video = np.random.default_rng(0).uniform(size=(8, 4, 16, 16, 3)).astype("float32")

    def temporary_bytes(remat):
        model = VideoPrismBackbone(**dict(TINY, num_spatial_layers=6), remat=remat)
        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def loss(trainable):
            out, _ = model.stateless_call(trainable, frozen, video, training=True)
            return ops.mean(out**2)

        compiled = jax.jit(jax.grad(loss)).lower(trainable).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain, remat = temporary_bytes(False), temporary_bytes(True)
    assert remat < 0.5 * plain, (plain, remat)
