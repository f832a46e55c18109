"""The engines' numbers: every engine and precision against Keras float32 on real clips (the
small checkpoint), every output key and shape, batches, masks and uint8 frames."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import openvino_float32_mismatches

from videoprism_keras.engine.build import EngineMismatch
from videoprism_keras.runtime import Encoder
from videoprism_keras.video import load_video

FRAMES, SIZE, CLIPS = 4, 16, 3
# (engine, precision): the lowest cosine of any output vector (a token's feature, a frame's
# or the video's embedding) against Keras float32, and the largest absolute difference.
# Measured on these clips: float32 ~2e-6 apart; bfloat16 cos >= 0.9999; int8 >= 0.9997.
BOUNDS = {
    ("openvino", "float32"): (0.999999, 1e-4),
    ("onnxruntime", "float32"): (0.999999, 1e-4),
    ("openvino", "bfloat16"): (0.999, 0.2),
    ("openvino", "int8"): (0.998, 0.3),
    ("onnxruntime", "int8"): (0.998, 0.3),
}


@pytest.fixture(scope="module")
def model(collection_model):
    return collection_model  # conftest's small checkpoint (soft cap 5); engines only read it


@pytest.fixture(scope="module")
def clips(media_dir):
    """3 real (4, 16, 16, 3) clips, interleaved frames spanning the video."""
    frames = load_video(media_dir / "water_bottle_drumming.mp4", num_frames=FRAMES * CLIPS,
                        size=SIZE)  # fmt: skip
    return np.stack([frames[i::CLIPS] for i in range(CLIPS)])


@pytest.fixture(scope="module")
def reference(model, clips):
    return Encoder(model).video(clips)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def encoders(model, cache):
    """One Encoder per engine and precision, sharing the module's cache."""
    made = {}

    def get(engine, precision):
        if (engine, precision) not in made:
            made[engine, precision] = Encoder(model, engine, precision, cache_dir=cache)
        return made[engine, precision]

    return get


def lowest_cosine(a, b):
    a, b = (np.asarray(x, np.float64).reshape(-1, x.shape[-1]) for x in (a, b))
    return float(
        (np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min()
    )


@pytest.mark.parametrize(("engine", "precision"), list(BOUNDS))
def test_each_engine_matches_keras_float32_within_its_precision(
    encoders, clips, reference, engine, precision
):
    encoder = encoders(engine, precision)
    got = encoder.video(clips)
    assert (encoder.engine, encoder.precision) == (engine, precision)
    assert sorted(got) == sorted(reference)
    floor, atol = BOUNDS[engine, precision]
    for key, expected in reference.items():
        assert got[key].shape == expected.shape and got[key].dtype == np.float32, key
        assert lowest_cosine(got[key], expected) >= floor, key
        np.testing.assert_allclose(got[key], expected, atol=atol, err_msg=key)
    assert len(encoder.artefact) == 64 and encoder.artefact[:12] in encoder.describe()


def test_a_batch_equals_its_clips_one_by_one(encoders, clips):
    for engine, precision in (("openvino", "int8"), ("onnxruntime", "float32")):
        encoder = encoders(engine, precision)
        whole = encoder.video(clips)
        for i in range(len(clips)):
            one = encoder.video(clips[i : i + 1])
            for key in whole:
                np.testing.assert_allclose(one[key][0], whole[key][i], atol=1e-5, err_msg=key)


def test_masked_frames_match_keras_masked(encoders, model, clips):
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], "int32")
    expected = Encoder(model).video(clips, mask)
    unmasked = Encoder(model).video(clips)
    assert not np.allclose(expected["vision_embeddings"], unmasked["vision_embeddings"])
    for engine in ("openvino", "onnxruntime"):
        got = encoders(engine, "float32").video(clips, mask)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=key)


def test_uint8_frames_are_scaled_as_the_model_scales_them(encoders, model, clips):
    frames = np.round(clips * 255).astype(np.uint8)
    expected = Encoder(model).video(frames)
    got = encoders("onnxruntime", "float32").video(frames)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=key)


def test_no_mask_is_every_frame_real(encoders, clips):
    encoder = encoders("onnxruntime", "float32")
    ones = np.ones(clips.shape[:2], "int32")
    for key, value in encoder.video(clips).items():
        np.testing.assert_array_equal(value, encoder.video(clips, ones)[key])


def test_bad_masks_are_refused(encoders, clips):
    encoder = encoders("onnxruntime", "float32")
    shape = r"must be \(batch, frames\).*Received: frame_padding_mask of shape \(3, 3\)"
    with pytest.raises(ValueError, match=shape):
        encoder.video(clips, np.ones((3, 3)))
    with pytest.raises(ValueError, match="of 0 and 1"):
        encoder.video(clips, np.full((3, 4), 2))


def test_other_clip_shapes_get_their_own_artefact(encoders, clips, model):
    encoder = encoders("onnxruntime", "float32")
    first = encoder.video(clips)
    key = encoder.artefact
    longer = np.concatenate([clips, clips], axis=1)  # 8 frames
    got = encoder.video(longer)
    assert encoder.artefact != key and got["spatial_features"].shape[1] == 8
    np.testing.assert_allclose(got["spatial_features"], Encoder(model).video(longer)[
        "spatial_features"], atol=1e-4)  # fmt: skip
    encoder.video(clips)
    assert encoder.artefact == key and sorted(encoder.video(clips)) == sorted(first)


def test_threads_may_share_an_encoder(encoders, clips):
    encoder = encoders("openvino", "float32")
    expected = encoder.video(clips)["vision_embeddings"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: encoder.video(clips)["vision_embeddings"], range(8)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


def test_the_text_tower_stays_on_keras(encoders, model, golden_dir):
    io = np.load(golden_dir / "lvt_small.io.npz")
    ids, mask = io["token_ids"], 1 - io["token_paddings"]
    got = encoders("openvino", "int8").text(ids, mask)
    np.testing.assert_array_equal(got, Encoder(model).text(ids, mask))


@pytest.mark.backend
def test_openvino_float32_runs_on_every_backend(model, clips, reference, tmp_path):
    encoder = Encoder(model, "openvino", "float32", cache_dir=tmp_path)
    got = encoder.video(clips[:2])
    for key in reference:
        np.testing.assert_allclose(got[key], reference[key][:2], atol=1e-4, err_msg=key)


def test_auto_float32_is_openvino_and_exact(encoders, model, clips, reference, cache):
    encoder = Encoder(model, "auto", "float32", cache_dir=cache)
    got = encoder.video(clips)
    assert encoder.engine == "openvino" and "auto's first choice for float32" in encoder.reason
    # the artefact of the named engine: auto builds nothing of its own
    assert encoder.artefact == encoders("openvino", "float32").artefact
    for key, expected in reference.items():
        assert lowest_cosine(got[key], expected) >= 0.99999, key  # the exact tier
        np.testing.assert_allclose(got[key], expected, atol=1e-4, err_msg=key)


def test_auto_float32_runs_keras_where_openvino_does_not_match_it(
    model, clips, reference, monkeypatch, tmp_path
):
    openvino_float32_mismatches(monkeypatch)
    named = Encoder(model, "openvino", "float32", cache_dir=tmp_path)
    with pytest.raises(EngineMismatch):  # asked for by name: an error, not another engine
        named.video(clips)
    encoder = Encoder(model, "auto", "float32", cache_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"does not match; auto runs float32 on Keras"):
        got = encoder.video(clips)
    assert (encoder.engine, encoder.precision, encoder.artefact) == ("keras", "float32", None)
    assert encoder.describe().startswith("Keras") and "does not match" in encoder.reason
    for key, expected in reference.items():
        np.testing.assert_array_equal(got[key], expected, err_msg=key)
    masked = encoder.video(clips, np.array([[1, 1, 0, 0]] * CLIPS))  # Keras' masked call too
    assert masked["spatiotemporal_features"].shape == got["spatiotemporal_features"].shape
