"""Export (Keras' `Model.export`) to SavedModel, ONNX and LiteRT; each artefact runs in its
own runtime and must give the Keras outputs.

Keras' support differs per backend (see `videoprism_keras.export`): SavedModel from JAX and
TensorFlow, ONNX from all three, LiteRT from TensorFlow (and from PyTorch with
litert-torch, which is not installed: it would downgrade typing_extensions here).
"""

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, random_text, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras import cli

pytestmark = pytest.mark.backend
BACKEND = keras.backend.backend()
SUPPORTED = {
    "tf_saved_model": ("jax", "tensorflow"),
    "onnx": ("jax", "tensorflow", "torch"),
    "litert": ("tensorflow",),
}
FILES = {"tf_saved_model": "model", "onnx": "model.onnx", "litert": "model.tflite"}
FRAMES, SIZE, LENGTH, BATCH = 3, 12, 8, 2  # other than the model's own 4 frames of 16×16


def _inputs():
    ids, mask = random_text(batch=BATCH, length=LENGTH)
    video = random_video(batch=BATCH, frames=FRAMES, size=SIZE)
    return {"pixel_values": video, "token_ids": ids, "padding_mask": mask}


def run_artefact(fmt, path, inputs):
    """The artefact's outputs by name, run in its own runtime."""
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path))
        feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
        outputs = session.run(None, feeds)
        return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))
    if fmt == "tf_saved_model":
        tf = pytest.importorskip("tensorflow")
        loaded = tf.saved_model.load(str(path))  # kept: `serve` holds its variables weakly
        out = loaded.serve(inputs if len(inputs) > 1 else inputs["pixel_values"])
        return {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else {"": out}
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    runner = interpreter.Interpreter(model_path=str(path)).get_signature_runner()
    return runner(**inputs)


@pytest.mark.parametrize("fmt", list(SUPPORTED))
@pytest.mark.parametrize("multimodal", [False, True], ids=["video", "lvt"])
def test_exported_artefacts_give_the_keras_outputs(tmp_path, fmt, multimodal):
    if BACKEND not in SUPPORTED[fmt]:
        pytest.skip(f"Keras cannot export {fmt} from {BACKEND} here (see module docstring)")
    model = vp.VideoPrismBackbone(**(TINY_LVT if multimodal else TINY))
    inputs = _inputs()
    if not multimodal:
        inputs = {"pixel_values": inputs["pixel_values"]}
    path = tmp_path / FILES[fmt]
    model.export(path, format=fmt, num_frames=FRAMES, size=SIZE, text_length=LENGTH,
                 batch_size=BATCH, verbose=False)  # fmt: skip
    expected = model(inputs if multimodal else inputs["pixel_values"])
    expected = {k: to_numpy(v) for k, v in expected.items()} if multimodal else to_numpy(expected)
    got = run_artefact(fmt, path, inputs)
    if multimodal:
        assert set(got) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, atol=1e-4)
    else:
        (value,) = got.values()
        assert value.shape == (BATCH, FRAMES, (SIZE // 4) ** 2, 16)
        np.testing.assert_allclose(value, expected, atol=1e-4)


def test_export_says_what_is_wrong(tmp_path):
    model = vp.VideoPrismBackbone(**TINY)
    with pytest.raises(ValueError, match="Received: format='pdf'"):
        model.export(tmp_path / "m", format="pdf")
    with pytest.raises(ValueError, match="multiple of patch_size=4"):
        model.export(tmp_path / "m.onnx", format="onnx", size=10)
    with pytest.raises(ValueError, match=r"\.onnx file"):
        model.export(tmp_path / "m.bin", format="onnx")
    unsupported = [f for f, backends in SUPPORTED.items() if BACKEND not in backends]
    for fmt in unsupported:
        if (BACKEND, fmt) == ("torch", "litert"):  # Keras' own error names the package
            with pytest.raises(ImportError, match="litert-torch"):
                model.export(tmp_path / FILES[fmt], format=fmt)
            continue
        with pytest.raises(ValueError, match=f"Received: format='{fmt}'"):
            model.export(tmp_path / FILES[fmt], format=fmt)


def test_cli_says_which_backend_in_its_own_words(tmp_path, monkeypatch, capsys):
    if BACKEND != "jax":
        pytest.skip("the combination refused is LiteRT from JAX")
    loaded = []  # refused before the model loads
    monkeypatch.setattr(vp.VideoPrismBackbone, "from_preset", lambda *a, **k: loaded.append(a))
    code = cli.main(["export", "--format", "litert", "-o", str(tmp_path / "m.tflite")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not loaded
    assert "--backend tensorflow" in err and "KERAS_BACKEND" not in err
    with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):  # Python's words there
        vp.VideoPrismBackbone(**TINY).export(tmp_path / "m.tflite", format="litert")


def test_cli_exports_a_preset(tmp_path, capsys):
    if BACKEND != "jax":
        pytest.skip("the command runs once, under JAX")
    model = vp.VideoPrismBackbone(**TINY)
    model.save_to_preset(tmp_path / "preset")
    out = tmp_path / "video.onnx"
    shape = ["--num-frames", "2", "--size", "8", "--batch-size", "1"]
    code = cli.main(["export", "--preset", str(tmp_path / "preset"), "--format", "onnx",
                     "-o", str(out), *shape])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    video = random_video(batch=1, frames=2, size=8)
    got = run_artefact("onnx", out, {"pixel_values": video})
    np.testing.assert_allclose(got["features"], to_numpy(model(video)), atol=1e-4)
    assert "video.onnx" in capsys.readouterr().out
