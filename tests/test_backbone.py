"""The seed API: shapes, arguments, serialisation, training, bad input."""

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, random_text, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.presets import PRESET_CONFIGS

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def tiny():
    return vp.VideoPrismBackbone(**TINY)


@pytest.fixture(scope="module")
def tiny_lvt():
    return vp.VideoPrismBackbone(**TINY_LVT)


def test_video_only_seed_shapes(tiny):
    out = tiny.predict(random_video(batch=3), verbose=0)
    assert out.shape == (3, 4, 16, 16)  # (B, num_frames, num_patches, hidden_dim)
    assert to_numpy(tiny(random_video())).shape == (2, 4, 16, 16)


def test_multimodal_seed_inputs_and_outputs(tiny_lvt):
    ids, mask = random_text(batch=2)
    inputs = {"pixel_values": random_video(batch=2), "token_ids": ids, "padding_mask": mask}
    out = tiny_lvt.predict(inputs, verbose=0)
    assert set(out) == {"vision_embeddings", "text_embeddings"}
    for value in out.values():
        assert value.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(value, axis=-1), 1.0, atol=1e-5)


def test_encode_video_any_frames_and_resolution(tiny_lvt):
    for frames, (height, width) in [(4, (16, 16)), (7, (16, 16)), (2, (24, 12)), (1, (8, 20))]:
        pixels = np.random.default_rng(0).uniform(size=(1, frames, height, width, 3))
        out = tiny_lvt.encode_video(pixels.astype("float32"))
        n = (height // 4) * (width // 4)
        assert out["spatiotemporal_features"].shape == (1, frames, n, 16)
        assert out["spatial_features"].shape == (1, frames, n, 16)
        assert out["frame_embeddings"].shape == (1, frames, 16)
        assert out["vision_embeddings"].shape == (1, 16)
        assert np.isfinite(to_numpy(out["vision_embeddings"])).all()


def test_padded_frames_never_matter(tiny_lvt):
    video = random_video(batch=1, frames=6)
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    other = video.copy()
    other[:, 4:] = np.random.default_rng(5).uniform(size=other[:, 4:].shape)
    a = tiny_lvt.encode_video(video, frame_padding_mask=mask)
    b = tiny_lvt.encode_video(other, frame_padding_mask=mask)
    np.testing.assert_allclose(
        to_numpy(a["vision_embeddings"]), to_numpy(b["vision_embeddings"]), atol=1e-6
    )
    real_a, real_b = (
        to_numpy(a["spatiotemporal_features"])[:, :4],
        to_numpy(b["spatiotemporal_features"])[:, :4],
    )
    np.testing.assert_allclose(real_a, real_b, atol=1e-6)


def test_text_padding_never_matters(tiny_lvt):
    ids, mask = random_text(batch=3, length=9)
    noisy = np.where(mask == 1, ids, 7).astype("int32")  # garbage ids at padded positions
    a, b = tiny_lvt.encode_text(ids, mask), tiny_lvt.encode_text(noisy, mask)
    np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_video_only_and_text_only_inputs_run_one_tower(tiny_lvt, monkeypatch):
    ids, mask = random_text(batch=2)

    def never(*args, **kwargs):
        raise AssertionError("the other tower ran")

    with monkeypatch.context() as patch:
        patch.setattr(tiny_lvt.text_encoder, "call", never)
        assert set(tiny_lvt({"pixel_values": random_video()})) == {"vision_embeddings"}
        assert tiny_lvt.encode_video(random_video())["vision_embeddings"].shape == (2, 16)
    with monkeypatch.context() as patch:
        patch.setattr(tiny_lvt.video_encoder, "call", never)
        assert set(tiny_lvt({"token_ids": ids, "padding_mask": mask})) == {"text_embeddings"}
        assert tiny_lvt.encode_text(ids, mask).shape == (2, 16)


def test_nested_lists_are_accepted(tiny_lvt):
    video = random_video(batch=1)
    ids, mask = random_text(batch=1)
    np.testing.assert_allclose(
        to_numpy(tiny_lvt.encode_video(video.tolist())["vision_embeddings"]),
        to_numpy(tiny_lvt.encode_video(video)["vision_embeddings"]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(tiny_lvt.encode_text(ids.tolist(), mask.tolist())),
        to_numpy(tiny_lvt.encode_text(ids, mask)),
        atol=1e-6,
    )


def test_soft_cap_none_and_epsilon_are_honoured():
    video = random_video()
    capped = vp.VideoPrismBackbone(**TINY)
    uncapped = vp.VideoPrismBackbone(**{**TINY, "attention_logit_soft_cap": None})
    uncapped.set_weights(capped.get_weights())
    for layer in uncapped.video_encoder.spatial_encoder.blocks:
        assert layer.attention.attention_logit_soft_cap is None
    # A cap of 5 changes the result once logits grow beyond a few units.
    for variable in capped.trainable_variables + uncapped.trainable_variables:
        if "qkv_proj/kernel" in variable.path:
            variable.assign(variable * 8.0)
    assert np.abs(to_numpy(capped(video)) - to_numpy(uncapped(video))).max() > 1e-3
    eps = vp.VideoPrismBackbone(**{**TINY, "layer_norm_epsilon": 1e-2})
    assert eps.video_encoder.spatial_norm.layer_norm_epsilon == 1e-2


def test_dropout_only_in_training():
    model = vp.VideoPrismBackbone(**{**TINY, "dropout_rate": 0.3, "attention_dropout_rate": 0.3})
    video = random_video()
    first, second = to_numpy(model(video)), to_numpy(model(video))
    np.testing.assert_array_equal(first, second)
    trained = to_numpy(model(video, training=True))
    assert np.abs(trained - first).max() > 1e-3


def test_channels_first(tiny, golden_dir):
    video = random_video()
    # Like keras_hub, image_shape follows data_format: (C, H, W) for channels_first.
    model = vp.VideoPrismBackbone(
        **{**TINY, "data_format": "channels_first", "image_shape": (3, 16, 16)}
    )
    model.set_weights(tiny.get_weights())
    ours = to_numpy(model(np.transpose(video, (0, 1, 4, 2, 3))))
    np.testing.assert_allclose(ours, to_numpy(tiny(video)), atol=1e-5)
    assert model.frame_shape == (16, 16, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        vp.VideoPrismBackbone(**{**TINY, "data_format": "channels_first"})  # (16, 16, 3)
    official = vp.load_flax_checkpoint(
        golden_dir / "video_small.ckpt.npz", attention_logit_soft_cap=5.0,
        data_format="channels_first",
    )  # fmt: skip
    assert tuple(official.image_shape) == (3, 16, 16)


@pytest.mark.parametrize("dtype", ["bfloat16", "mixed_bfloat16"])
def test_bfloat16(tiny_lvt, dtype):
    model = vp.VideoPrismBackbone(**TINY_LVT, dtype=dtype)
    model.set_weights(tiny_lvt.get_weights())
    video = random_video()
    ids, mask = random_text()
    out = model.encode_video(video)
    assert keras.backend.standardize_dtype(out["vision_embeddings"].dtype) == "bfloat16"
    reference = to_numpy(tiny_lvt.encode_video(video)["vision_embeddings"])
    np.testing.assert_allclose(to_numpy(out["vision_embeddings"]), reference, atol=0.05)
    text = to_numpy(model.encode_text(ids, mask))
    np.testing.assert_allclose(text, to_numpy(tiny_lvt.encode_text(ids, mask)), atol=0.05)
    weight_dtype = "float32" if dtype == "mixed_bfloat16" else "bfloat16"
    assert {v.dtype for v in model.weights} == {weight_dtype}


def test_config_round_trip(tiny_lvt):
    config = tiny_lvt.get_config()
    clone = vp.VideoPrismBackbone.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(tiny_lvt.get_weights())
    video = random_video()
    np.testing.assert_array_equal(
        to_numpy(clone.encode_video(video)["vision_embeddings"]),
        to_numpy(tiny_lvt.encode_video(video)["vision_embeddings"]),
    )


@pytest.mark.parametrize("config", [TINY, TINY_LVT], ids=["video", "lvt"])
def test_keras_file_round_trip(tmp_path, config):
    model = vp.VideoPrismBackbone(**config)
    ids, mask = random_text(batch=2)
    inputs = {"pixel_values": random_video(), "token_ids": ids, "padding_mask": mask}
    inputs = inputs if model.is_multimodal else inputs["pixel_values"]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, vp.VideoPrismBackbone)
    expected, got = model(inputs), loaded(inputs)
    if not isinstance(expected, dict):
        expected, got = {"features": expected}, {"features": got}
    for key in expected:
        np.testing.assert_array_equal(to_numpy(got[key]), to_numpy(expected[key]))


def test_fit_one_step_moves_every_weight():
    model = vp.VideoPrismBackbone(**TINY_LVT)
    before = [to_numpy(w) for w in model.trainable_weights]
    ids, mask = random_text(batch=2)
    x = {"pixel_values": random_video(), "token_ids": ids, "padding_mask": mask}
    # Random targets: a constant one lies in the direction the final LayerNorm removes.
    targets = np.random.default_rng(1).normal(size=(2, 2, 16)).astype("float32")
    y = {"vision_embeddings": targets[0], "text_embeddings": targets[1]}
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [to_numpy(w) for w in model.trainable_weights]
    unchanged = [
        w.path
        for w, a, b in zip(model.trainable_weights, before, after, strict=True)
        if np.array_equal(a, b)
    ]
    assert not unchanged, f"no gradient reached {unchanged}"


def jit(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    import torch

    # Dynamo capture without inductor's C++ build, which is slow on small CPUs.
    return torch.compile(fn, backend="aot_eager")


@pytest.mark.parametrize(
    "frames, size, masked", [(4, 16, False), (6, 24, False), (3, 8, True)], ids=str
)
def test_jit(tiny_lvt, frames, size, masked):
    video = random_video(frames=frames, size=size)
    mask = np.ones((2, frames), "int32")
    mask[1, -1] = 0
    mask = mask if masked else None
    eager = tiny_lvt.encode_video(video, mask)
    fn = jit(lambda x, m: tiny_lvt.encode_video(x, m))
    mask_tensor = None if mask is None else keras.ops.convert_to_tensor(mask)
    compiled = fn(keras.ops.convert_to_tensor(video), mask_tensor)
    for key in ("vision_embeddings", "frame_embeddings", "spatiotemporal_features"):
        np.testing.assert_allclose(to_numpy(compiled[key]), to_numpy(eager[key]), atol=1e-5)


def test_preset_configurations_have_the_official_sizes():
    if keras.backend.backend() != "jax":
        pytest.skip("sizes are backend-independent; counted once, under JAX")
    official_millions = {
        "videoprism_public_v1_base": 114,
        "videoprism_lvt_public_v1_base": 248,
        "videoprism_public_v1_large": 354,
        "videoprism_lvt_public_v1_large": 580,
    }
    for name, config in PRESET_CONFIGS.items():
        # Built for the shapes only: in a stateless scope Keras defers the initial values,
        # so no random weights are drawn just to be counted...
        with keras.StatelessScope(initialize_variables=False):
            count = vp.VideoPrismBackbone(**config).count_params()
        keras.backend.clear_session()  # ...and forgets the variables it would draw them for
        print(f"{name}: {count:,} parameters")
        assert round(count / 1e6) == official_millions[name], name
        assert count == vp.VideoPrismBackbone.presets[name]["params"], name  # `videoprism info`


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.zeros((4, 16, 16, 3), "float32"), "5-D"),
        (np.zeros((1, 4, 16, 16, 1), "float32"), "channels"),
        (np.zeros((1, 4, 18, 16, 3), "float32"), "multiples of patch_size"),
    ],
)
def test_bad_pixels(tiny, pixels, message):
    with pytest.raises(ValueError, match=message):
        tiny.encode_video(pixels)


def test_bad_text_inputs(tiny_lvt, tiny):
    ids, mask = random_text()
    with pytest.raises(ValueError, match="padding_mask"):
        tiny_lvt({"token_ids": ids})
    with pytest.raises(ValueError, match="padding_mask"):
        tiny_lvt.encode_text(ids, None)
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        tiny_lvt.encode_text(ids, mask[:, :3])
    with pytest.raises(ValueError, match="multimodal"):
        tiny.encode_text(ids, mask)
    with pytest.raises(ValueError, match="frame_padding_mask"):
        tiny_lvt.encode_video(random_video(), frame_padding_mask=np.ones((2, 3)))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(num_text_layers=2, vocabulary_size=0), "vocabulary_size"),
        (dict(num_heads=3), "divisible by num_heads"),
        (dict(image_shape=(18, 16, 3)), "multiples of patch_size"),
        (dict(num_auxiliary_layers=-1), "num_auxiliary_layers"),
        (dict(data_format="NHWC"), "data_format"),
    ],
)
def test_bad_config(change, message):
    with pytest.raises(ValueError, match=message):
        vp.VideoPrismBackbone(**{**TINY, **change})


def test_every_layer_round_trips_its_config(tiny_lvt):
    """Every sub-layer writes its arguments explicitly (`get_config`) and makes its weights
    in `build`, so a clone from its config has the same weights once built."""
    layers = list(tiny_lvt._flatten_layers(include_self=False))
    assert len(layers) > 20
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config, type(layer).__name__
        assert not clone.weights, type(layer).__name__  # nothing made before build
    for layer in (tiny_lvt.video_encoder, tiny_lvt.text_encoder):  # shape-free builds
        clone = type(layer).from_config(layer.get_config())
        clone.build()
        assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
