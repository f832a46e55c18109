"""Our outputs against the official Flax implementation's, on the same weights.

The fixtures in ../shared/golden were produced by Google's own code; see its README.
"""

import numpy as np
import pytest
from helpers import to_numpy

import videoprism_keras as vp
from videoprism_keras.runtime import Encoder

pytestmark = pytest.mark.backend
ATOL = 1e-4
D = 32


@pytest.fixture(scope="module")
def video_model(golden_dir):
    return vp.load_flax_checkpoint(
        golden_dir / "video_small.ckpt.npz", attention_logit_soft_cap=5.0
    )


@pytest.fixture(scope="module")
def lvt_model(golden_dir):
    return vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)


@pytest.fixture(scope="module")
def video_io(golden_dir):
    return dict(np.load(golden_dir / "video_small.io.npz"))


@pytest.fixture(scope="module")
def lvt_io(golden_dir):
    return dict(np.load(golden_dir / "lvt_small.io.npz"))


def assert_close(ours, theirs, where=None):
    ours = to_numpy(ours).reshape(theirs.shape)
    assert np.isfinite(ours).all()
    if where is not None:
        ours, theirs = ours[where], theirs[where]
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("group", ["base", "frames6", "frames3", "res20", "frame_paddings"])
def test_video_encoder_matches_official(video_model, video_io, group):
    pixels = video_io[f"{group}/pixel_values"]
    batch, frames = pixels.shape[:2]
    mask, real = None, None
    if group == "frame_paddings":
        mask = 1 - video_io["frame_paddings/frame_paddings"]  # official: 1 = padded frame
        tokens = video_io[f"{group}/embeddings"].shape[1] // frames
        real = np.repeat(mask.astype(bool), tokens, axis=1)  # compare real frames only
    out = video_model.encode_video(pixels, frame_padding_mask=mask)
    assert out["spatiotemporal_features"].shape[:2] == (batch, frames)
    assert_close(out["spatiotemporal_features"], video_io[f"{group}/embeddings"], real)
    assert_close(out["spatial_features"], video_io[f"{group}/spatial_features"], real)


def test_video_only_call_is_the_spatiotemporal_output(video_model, video_io):
    pixels = video_io["base/pixel_values"]
    assert_close(video_model(pixels), video_io["base/embeddings"])
    assert_close(video_model.predict(pixels, verbose=0), video_io["base/embeddings"])


@pytest.mark.parametrize("normalize", [True, False])
def test_lvt_video_tower_matches_official(lvt_model, lvt_io, normalize):
    suffix = "" if normalize else "_unnormalized"
    out = lvt_model.encode_video(lvt_io["pixel_values"], normalize=normalize)
    assert_close(out["vision_embeddings"], lvt_io[f"video_embeddings{suffix}"])
    assert_close(out["frame_embeddings"], lvt_io[f"frame_embeddings{suffix}"])
    assert_close(out["spatial_features"], lvt_io["spatial_features"])
    assert_close(out["spatiotemporal_features"], lvt_io["spatiotemporal_features"])


@pytest.mark.parametrize("normalize", [True, False])
def test_lvt_text_tower_matches_official(lvt_model, lvt_io, normalize):
    suffix = "" if normalize else "_unnormalized"
    mask = 1 - lvt_io["token_paddings"]  # official: 1 = padding
    text = lvt_model.encode_text(lvt_io["token_ids"], mask, normalize=normalize)
    assert_close(text, lvt_io[f"text_embeddings{suffix}"])


def test_lvt_six_frames_interpolates_like_official(lvt_model, lvt_io):
    out = lvt_model.encode_video(lvt_io["extra/pixel_values"])
    assert_close(out["vision_embeddings"], lvt_io["extra/video_embeddings"])


def test_lvt_call_returns_normalised_embeddings(lvt_model, lvt_io):
    # The seed's multimodal call; video and text batches may differ in size.
    out = lvt_model(
        {
            "pixel_values": lvt_io["pixel_values"],
            "token_ids": lvt_io["token_ids"],
            "padding_mask": 1 - lvt_io["token_paddings"],
        }
    )
    assert_close(out["vision_embeddings"], lvt_io["video_embeddings"])
    assert_close(out["text_embeddings"], lvt_io["text_embeddings"])
    for key in ("vision_embeddings", "text_embeddings"):
        np.testing.assert_allclose(np.linalg.norm(to_numpy(out[key]), axis=-1), 1.0, atol=1e-5)


# The explicit approximate fast mode: bfloat16 GEMMs, float32 softmax/LayerNorm
# statistics. Measured on these fixtures (every backend): embeddings within cosine
# 0.99996 of the official ones, token features within 0.9% relative error.
@pytest.mark.parametrize("dtype", ["bfloat16", "mixed_bfloat16"])
def test_bfloat16_fast_mode_error_is_bounded(golden_dir, lvt_io, video_io, dtype):
    lvt = vp.load_flax_checkpoint(
        golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0, dtype=dtype
    )
    encoder = Encoder(lvt)
    video = encoder.video(lvt_io["pixel_values"])["vision_embeddings"]
    text = encoder.text(lvt_io["token_ids"], 1 - lvt_io["token_paddings"])
    for ours, theirs in ((video, lvt_io["video_embeddings"]), (text, lvt_io["text_embeddings"])):
        assert ours.dtype == np.float32
        assert (ours * theirs).sum(-1).min() > 0.9995  # unit vectors: cosine similarity
    small = vp.load_flax_checkpoint(
        golden_dir / "video_small.ckpt.npz", attention_logit_soft_cap=5.0, dtype=dtype
    )
    features = Encoder(small).video(video_io["base/pixel_values"])["spatiotemporal_features"]
    expected = video_io["base/embeddings"]
    error = np.linalg.norm(features.reshape(expected.shape) - expected) / np.linalg.norm(expected)
    assert 1e-4 < error < 0.02  # approximate, but close
