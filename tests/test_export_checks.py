"""Where an export goes: refused before any work (in Python's words and the CLI's), and
written all at once, so that a failed export leaves nothing half-written behind."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from cli_helpers import call
from helpers import TINY, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras import export as export_module
from videoprism_keras import export_paths

BACKEND = keras.backend.backend()


@pytest.fixture
def no_model_load(monkeypatch):
    """The CLI's checks come before the model loads: loading fails the test."""

    def load(*args, **kwargs):
        raise AssertionError("the model loaded before the output was checked")

    monkeypatch.setattr(vp.VideoPrismBackbone, "from_preset", load)


def _read_only(monkeypatch, folder):
    """`folder` unwritable, as for a user without the right (root passes a chmod)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: real(p, mode, **kw)
                        and os.fspath(p) != os.fspath(folder))  # fmt: skip


def test_export_creates_no_folders_and_says_the_folder_is_missing(tmp_path):
    model = vp.VideoPrismBackbone(**TINY)
    # PyTorch exports no SavedModel: that one is checked alone (as `export` checks it).
    for fmt, name, run in (
        ("onnx", "m.onnx", model.export),
        ("tf_saved_model", "saved", export_paths.check_destination),
    ):
        target = tmp_path / "missing" / "dir" / name
        with pytest.raises(ValueError, match=r"filepath=.*does not exist") as err:
            run(target, format=fmt)
        assert str(tmp_path / "missing" / "dir") in str(err.value)
        assert not (tmp_path / "missing").exists()


def test_export_refuses_a_read_only_folder_in_python_words(tmp_path, monkeypatch):
    model = vp.VideoPrismBackbone(**TINY)
    _read_only(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match=r"filepath=.*cannot write in folder"):
        model.export(tmp_path / "m.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_probe_counts_as_read_only(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")  # what root meets on a read-only mount

    monkeypatch.setattr(export_paths.tempfile, "mkdtemp", refuse)
    with pytest.raises(ValueError, match="cannot write in folder"):
        export_paths.check_destination(tmp_path / "m.onnx", "onnx")


def test_a_saved_model_never_goes_into_a_folder_with_files(tmp_path):
    model = vp.VideoPrismBackbone(**TINY)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_paths.check_destination(tmp_path, "tf_saved_model")
    if BACKEND != "torch":  # `export` checks it first (PyTorch exports no SavedModel)
        with pytest.raises(ValueError, match="not empty"):
            model.export(tmp_path, format="tf_saved_model")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        export_paths.check_destination(tmp_path / "file", "tf_saved_model")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(ValueError, match="symbolic link"):
        export_paths.check_destination(tmp_path / "link", "tf_saved_model")
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        model.export(tmp_path / "dir.onnx", format="onnx")


def test_cli_refuses_bad_outputs_naming_o_before_the_model_loads(
    tmp_path, monkeypatch, capsys, no_model_load
):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "ro").mkdir()
    cases = {
        ("onnx", tmp_path / "missing" / "dir" / "m.onnx"): "does not exist",
        ("tf_saved_model", tmp_path / "missing" / "saved"): "does not exist",
        ("tf_saved_model", tmp_path / "full"): "not empty",
        ("onnx", tmp_path / "ro" / "m.onnx"): "cannot write in folder",
    }
    _read_only(monkeypatch, tmp_path / "ro")
    for (fmt, out), says in cases.items():
        got = call(capsys, "export", "--format", fmt, "-o", out)
        assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
        assert f"-o {out}: " in got.stderr and says in got.stderr
        assert "filepath" not in got.stderr and "Traceback" not in got.stderr
    assert not (tmp_path / "missing").exists()
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    model = vp.VideoPrismBackbone(**TINY)
    (tmp_path / "m.onnx").write_bytes(b"the previous artefact")

    def half_written(model, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half")
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(export_module, "write_onnx", half_written)
    with pytest.raises(RuntimeError, match="killed while writing"):
        model.export(tmp_path / "m.onnx", format="onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no staging folder left
    assert (tmp_path / "m.onnx").read_bytes() == b"the previous artefact"


def test_an_export_replaces_the_artefact_in_place(tmp_path, capsys):
    if BACKEND != "jax":
        pytest.skip("the writes are the same on every backend: run once, under JAX")
    ort = pytest.importorskip("onnxruntime")
    model = vp.VideoPrismBackbone(**TINY)
    (tmp_path / "m.onnx").write_bytes(b"the previous artefact")
    model.export(tmp_path / "m.onnx", format="onnx", num_frames=2, size=8)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    said = capsys.readouterr().out  # Keras' message names where the artefact is now
    assert f"Saved artifact at '{tmp_path / 'm.onnx'}'" in said and ".partial" not in said
    video = random_video(batch=1, frames=2, size=8)
    (got,) = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"pixel_values": video})
    np.testing.assert_allclose(got, to_numpy(model(video)), atol=1e-4)


def test_a_saved_model_replaces_an_empty_folder_whole(tmp_path):
    (tmp_path / "saved").mkdir()

    def write(path):  # a SavedModel's shape: a folder of files
        os.mkdir(path)
        (path / "saved_model.pb").write_bytes(b"graph")

    export_paths.write_atomically(tmp_path / "saved", write)
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]
    assert (tmp_path / "saved" / "saved_model.pb").read_bytes() == b"graph"


def test_weights_saved_inline_leave_no_stale_data_file_beside_the_onnx(tmp_path, monkeypatch):
    if BACKEND != "jax":
        pytest.skip("jax2onnx writes the weights beside the model: JAX only")
    jax2onnx = pytest.importorskip("jax2onnx")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(4, dtype="float32")

    def with_external_weights(call, inputs, output_path, **kwargs):  # as for a large model
        # Traced once ("batch" as 1), which names the outputs.
        call(*(np.ones([1 if isinstance(d, str) else d for d in i.shape], i.dtype) for i in inputs))
        filepath = Path(output_path)
        x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [4])
        y = helper.make_tensor_value_info("add_out", TensorProto.FLOAT, [4])
        node = helper.make_node("Add", ["pixel_values", "w"], ["add_out"])
        graph = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(weights, "w")])
        onnx.save(helper.make_model(graph), str(filepath), save_as_external_data=True,
                  location=f"{filepath.name}.data", size_threshold=0)  # fmt: skip
        assert (filepath.parent / f"{filepath.name}.data").is_file()

    monkeypatch.setattr(jax2onnx, "to_onnx", with_external_weights)
    vp.VideoPrismBackbone(**TINY).export(tmp_path / "m.onnx", format="onnx", verbose=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # the weights are inside now
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    (got,) = session.run(["features"], {"pixel_values": np.ones(4, "float32")})
    np.testing.assert_array_equal(got, weights + 1)


def test_onnx_export_refuses_options_its_exporters_do_not_take(tmp_path):
    model = vp.VideoPrismBackbone(**TINY)
    with pytest.raises(TypeError, match=r"opset_version only.*Received: dynamo"):
        model.export(tmp_path / "m.onnx", format="onnx", dynamo=True)
    assert list(tmp_path.iterdir()) == []  # before any work


def test_cli_says_onnx_from_tensorflow_is_exported_under_jax(tmp_path, monkeypatch, capsys):
    model = vp.VideoPrismBackbone(**TINY)
    exported = []
    monkeypatch.setattr(vp.VideoPrismBackbone, "from_preset", lambda *a, **k: model)
    monkeypatch.setattr(vp.VideoPrismBackbone, "export", lambda self, *a, **k: exported.append(a))
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")  # the route's one check
    got = call(capsys, "export", "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert got.returncode == 0 and len(exported) == 1, got.stderr
    assert "under --backend jax in a child process" in got.stderr
    assert got.stderr.startswith("videoprism: ") and got.stderr.count("\n") == 1
