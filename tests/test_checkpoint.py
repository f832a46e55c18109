"""Reading official checkpoints: config inference, every tensor used, clear errors."""

import numpy as np
import pytest
from helpers import to_numpy

import videoprism_keras as vp
from videoprism_keras.checkpoint import export_flax_checkpoint
from videoprism_keras.saving import infer_config, read_checkpoint

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def lvt_arrays(golden_dir):
    return dict(np.load(golden_dir / "lvt_small.ckpt.npz"))


def test_config_is_inferred_from_shapes(golden_dir):
    video = infer_config(read_checkpoint(golden_dir / "video_small.ckpt.npz"))
    assert video == dict(
        num_frames=4, patch_size=4, hidden_dim=32, intermediate_dim=48, num_heads=4,
        num_spatial_layers=2, num_temporal_layers=2, num_auxiliary_layers=0,
        vocabulary_size=0, num_text_layers=0, image_shape=(16, 16, 3),
    )  # fmt: skip
    lvt = infer_config(read_checkpoint(golden_dir / "lvt_small.ckpt.npz"))
    assert (lvt["num_temporal_layers"], lvt["num_auxiliary_layers"]) == (1, 1)
    assert (lvt["vocabulary_size"], lvt["num_text_layers"], lvt["intermediate_dim"]) == (
        1000,
        2,
        128,
    )


def test_nested_mapping_loads_like_the_file(golden_dir, lvt_arrays):
    nested: dict = {}
    for key, value in lvt_arrays.items():
        node = nested
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    from_file = vp.load_flax_checkpoint(
        golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0
    )
    from_tree = vp.load_flax_checkpoint(nested, attention_logit_soft_cap=5.0)
    for a, b in zip(from_file.weights, from_tree.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_override_frames_and_resolution_resizes_tables(golden_dir):
    path = golden_dir / "lvt_small.ckpt.npz"
    native = vp.load_flax_checkpoint(path, attention_logit_soft_cap=5.0)
    resized = vp.load_flax_checkpoint(
        path, attention_logit_soft_cap=5.0, num_frames=6, image_shape=(24, 24, 3)
    )
    assert resized.video_encoder.temporal_positions.table.shape == (6, 32)
    assert resized.video_encoder.spatial_positions.table.shape == (36, 32)
    # Resizing at load time equals resizing at call time.
    video = np.random.default_rng(0).uniform(size=(1, 6, 24, 24, 3)).astype("float32")
    a = to_numpy(native.encode_video(video)["vision_embeddings"])
    b = to_numpy(resized.encode_video(video)["vision_embeddings"])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_missing_unexpected_and_misshaped_tensors_are_named(lvt_arrays):
    broken = dict(lvt_arrays)
    del broken["params/text_encoder/unimodal_ln/bias"]
    broken["params/text_encoder/extra/w"] = np.zeros(3)
    key = "params/vision_encoder/spatial_ln/scale"
    broken[key] = np.zeros(31, "float32")
    with pytest.raises(ValueError) as info:
        vp.load_flax_checkpoint(broken)
    message = str(info.value)
    assert "text_encoder/unimodal_ln/bias" in message and "missing" in message
    assert "text_encoder/extra/w" in message and "unexpected" in message
    assert "vision_encoder/spatial_ln/scale" in message and "(31,)" in message


def test_checkpoint_against_an_incompatible_override(lvt_arrays):
    with pytest.raises(ValueError, match="mis-shaped"):
        vp.load_flax_checkpoint(lvt_arrays, hidden_dim=64)


def test_not_a_videoprism_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, **{"params/some/weight": np.zeros(3)})
    with pytest.raises(ValueError, match="patch_projection"):
        vp.load_flax_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncate", "text", "missing"])
def test_damaged_files(tmp_path, golden_dir, damage):
    path = tmp_path / "ckpt.npz"
    data = (golden_dir / "video_small.ckpt.npz").read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "text":
        path.write_text("not a checkpoint")
    error = FileNotFoundError if damage == "missing" else ValueError
    with pytest.raises(error, match=r"ckpt\.npz"):
        vp.load_flax_checkpoint(path)


def test_export_is_the_exact_inverse(golden_dir, lvt_arrays, tmp_path):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)
    exported = export_flax_checkpoint(model, tmp_path / "out.npz")
    assert exported.keys() == lvt_arrays.keys()
    for key, value in lvt_arrays.items():
        np.testing.assert_allclose(exported[key], value, atol=1e-6, err_msg=key)
    again = vp.load_flax_checkpoint(tmp_path / "out.npz", attention_logit_soft_cap=5.0)
    ids = np.array([[1, 5, 9, 0]], "int32")
    mask = np.array([[1, 1, 1, 0]], "int32")
    np.testing.assert_array_equal(
        to_numpy(again.encode_text(ids, mask)), to_numpy(model.encode_text(ids, mask))
    )
