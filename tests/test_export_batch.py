"""ONNX with a free batch from every backend: the artefact's batch axis is symbolic and
it runs at batch 1 and 3 with the Keras outputs. From TensorFlow the export is routed
through a JAX child process (tf2onnx's memory); there it must give the same numbers.
"""

import keras
import numpy as np
import pytest
from helpers import TINY, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.export import export

pytestmark = pytest.mark.backend
BACKEND = keras.backend.backend()
FRAMES, SIZE = 3, 12  # other than the model's own 4 frames of 16×16


def _session(path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # jax2onnx leaves unused shape constants: warned, not wrong
    return ort.InferenceSession(str(path), options)


class VideoTower(keras.Model):
    """What the engine exports: `encode_video` with a frame mask, returning a dict."""

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, pixel_values, frame_padding_mask):
        return self.backbone.encode_video(pixel_values, frame_padding_mask)


def test_onnx_takes_any_batch_and_gives_the_keras_outputs(tmp_path):
    model = vp.VideoPrismBackbone(**TINY)
    path = tmp_path / "video.onnx"
    model.export(path, format="onnx", num_frames=FRAMES, size=SIZE, verbose=False)
    session = _session(path)
    (given,) = session.get_inputs()
    assert given.name == "pixel_values" and isinstance(given.shape[0], str)  # symbolic
    assert given.shape[1:] == [FRAMES, SIZE, SIZE, 3]
    for batch in (1, 3):
        video = random_video(batch=batch, frames=FRAMES, size=SIZE, seed=batch)
        (got,) = session.run(["features"], {"pixel_values": video})
        np.testing.assert_allclose(got, to_numpy(model(video)), atol=1e-4)


def test_a_wrapper_with_an_explicit_signature_keeps_a_free_batch(tmp_path):
    backbone = vp.VideoPrismBackbone(**TINY)
    signature = [
        keras.InputSpec(shape=(None, FRAMES, SIZE, SIZE, 3), dtype="float32", name="pixel_values"),
        keras.InputSpec(shape=(None, FRAMES), dtype="int32", name="frame_padding_mask"),
    ]
    path = tmp_path / "tower.onnx"
    if BACKEND == "tensorflow":  # the route rebuilds the model from a .keras file
        with pytest.raises(ValueError, match=r"could not be saved.*KERAS_BACKEND=jax"):
            export(VideoTower(backbone), path, format="onnx", input_signature=signature)
        assert list(tmp_path.iterdir()) == []
        return
    export(VideoTower(backbone), path, format="onnx", input_signature=signature, verbose=False)
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["pixel_values", "frame_padding_mask"]
    assert all(isinstance(i.shape[0], str) for i in session.get_inputs())
    names = [o.name for o in session.get_outputs()]
    assert names == ["spatial_features", "spatiotemporal_features"]  # the dict's keys, sorted
    for batch in (1, 3):
        video = random_video(batch=batch, frames=FRAMES, size=SIZE, seed=batch)
        mask = np.ones((batch, FRAMES), "int32")
        mask[-1, -1] = 0  # the last clip's last frame is padding
        got = session.run(None, {"pixel_values": video, "frame_padding_mask": mask})
        expected = backbone.encode_video(video, mask)
        for name, value in zip(names, got, strict=True):
            np.testing.assert_allclose(value, to_numpy(expected[name]), atol=1e-4)


@keras.saving.register_keras_serializable(package="videoprism_keras_tests")
class SavableTower(VideoTower):
    """Saves (it has a config), but only this test module knows the class."""

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(
            self.backbone)}  # fmt: skip


def test_the_tensorflow_route_says_when_the_model_cannot_be_rebuilt(tmp_path):
    if BACKEND != "tensorflow":
        pytest.skip("only TensorFlow's ONNX is routed through a child process")
    signature = [keras.InputSpec(shape=(None, FRAMES, SIZE, SIZE, 3), dtype="float32",
                                 name="pixel_values"),
                 keras.InputSpec(shape=(None, FRAMES), dtype="int32",
                                 name="frame_padding_mask")]  # fmt: skip
    tower = SavableTower(vp.VideoPrismBackbone(**TINY))
    with pytest.raises(ValueError, match=r"could not load it back.*SavableTower"):
        export(tower, tmp_path / "t.onnx", format="onnx", input_signature=signature)
    assert list(tmp_path.iterdir()) == []
