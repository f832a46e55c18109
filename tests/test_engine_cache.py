"""The engines' on-disk cache: an artefact is built once and found after, keyed on the
weights, never read half-built (a build killed mid-way), one per key however many build it
at once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import videoprism_keras as vp
from videoprism_keras.engine import artefacts, build
from videoprism_keras.runtime import Encoder
from videoprism_keras.video import load_video

HERE = Path(__file__).parent
WORKER = HERE / "engine_build_worker.py"


@pytest.fixture(scope="module")
def model(collection_model):
    return collection_model  # conftest's small checkpoint (soft cap 5); engines only read it


@pytest.fixture(scope="module")
def clips(media_dir):
    frames = load_video(media_dir / "water_bottle_drumming.mp4", num_frames=8, size=16)
    return np.stack([frames[0::2], frames[1::2]])  # 2 real (4, 16, 16, 3) clips


def built(cache):
    return [p for p in cache.iterdir() if artefacts.is_built(p)]


def leftovers(cache):
    return [p for p in cache.iterdir() if p.name.endswith(artefacts.PARTIAL)]


def test_a_second_encoder_reuses_the_artefact(model, clips, tmp_path, monkeypatch):
    first = Encoder(model, "onnxruntime", "int8", cache_dir=tmp_path)
    assert first.artefact is None and "built on first use" in first.describe()
    expected = first.video(clips)
    (folder,) = built(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["key"] == first.artefact and meta["inputs"]["precision"] == "int8"
    assert meta["inputs"]["clip"] == [4, 16, 16] and meta["versions"]["onnxruntime"]
    stamp = folder.stat().st_mtime_ns

    def no_export(*args):
        raise AssertionError("rebuilt")

    monkeypatch.setattr(build, "export_onnx", no_export)
    second = Encoder(model, "onnxruntime", "int8", cache_dir=tmp_path)
    got = second.video(clips)
    assert second.artefact == first.artefact and folder.stat().st_mtime_ns == stamp
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def test_changed_weights_get_a_new_key(golden_dir, clips, tmp_path):
    def encoder(nudge):
        model = vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                                  attention_logit_soft_cap=5.0)  # fmt: skip
        weight = model.weights[-1]
        weight.assign(weight.numpy() + nudge)
        made = Encoder(model, "onnxruntime", "float32", cache_dir=tmp_path)
        made.video(clips)
        return made.artefact

    assert encoder(0.0) != encoder(1e-3)
    assert len(built(tmp_path)) == 2


def test_calibration_clips_are_built_for_at_once_and_kept(model, clips, tmp_path):
    encoder = Encoder(model, "openvino", "int8", calibration=clips, cache_dir=tmp_path)
    assert encoder.artefact is not None and "NNCF, 2 clips" in encoder.describe()
    default = Encoder(model, "openvino", "int8", cache_dir=tmp_path)
    default.video(clips[:1])  # calibrated on that one clip: another artefact
    assert default.artefact != encoder.artefact and "NNCF, 1 clip)" in default.describe()
    with pytest.raises(ValueError, match=r"calibrated on clips of .* \(4, 16, 16\).*"
                                         r"Received: clips of \(2, 16, 16\)"):  # fmt: skip
        encoder.video(clips[:, :2])


def test_a_killed_build_leaves_nothing_readable_and_the_next_one_builds(
    model, clips, tmp_path, golden_dir
):
    cache, out = tmp_path / "cache", tmp_path / "out.npy"
    np.save(tmp_path / "clips.npy", clips)
    command = [sys.executable, str(WORKER), str(cache), str(out), "pause", str(golden_dir.parent)]
    worker = subprocess.Popen(command, env=worker_env())
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert out.exists(), "the worker never staged its artefact"
        staged = Path(out.read_text())
        assert any(staged.iterdir())  # files written, no meta yet
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    assert built(cache) == [] and leftovers(cache) == [staged]
    encoder = Encoder(model, "onnxruntime", "float32", cache_dir=cache)
    assert encoder.video(clips)["vision_embeddings"].shape == (2, 32)
    assert len(built(cache)) == 1 and leftovers(cache) == []  # the dead build's removed


def test_a_signal_after_openvino_engines_are_dropped_is_handled(clips, tmp_path, golden_dir):
    # OpenVINO 2026.4's CPU plugin swaps the thread's signal stack when loaded and unloaded;
    # unloaded out of order, the next signal crashed the process (a server's SIGTERM).
    np.save(tmp_path / "clips.npy", clips)
    out = tmp_path / "out.txt"
    command = [sys.executable, str(WORKER), str(tmp_path / "cache"), str(out), "signal",
               str(golden_dir.parent)]  # fmt: skip
    worker = subprocess.run(command, env=worker_env(), capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert json.loads(out.read_text()) == {"same stack": True, "handled": True}


def test_two_builders_at_once_make_one_artefact(clips, tmp_path, golden_dir):
    cache = tmp_path / "cache"
    np.save(tmp_path / "clips.npy", clips)
    outs = [tmp_path / f"out{i}.npy" for i in range(2)]
    workers = [subprocess.Popen([sys.executable, str(WORKER), str(cache), str(out), "build",
                                 str(golden_dir.parent)], env=worker_env())
               for out in outs]  # fmt: skip
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    assert len(built(cache)) == 1 and leftovers(cache) == []
    np.testing.assert_array_equal(np.load(outs[0]), np.load(outs[1]))


def test_a_builder_that_loses_the_rename_keeps_the_winner_and_removes_its_copy(tmp_path):
    inputs = {"what": "a test artefact"}
    folder = artefacts.folder_of(tmp_path, artefacts.key_of(inputs))

    def build_while_another_wins(staging):
        (staging / "mine").write_text("loser")
        folder.mkdir()  # another builder, without a working lock, renamed first
        (folder / "theirs").write_text("winner")
        (folder / artefacts.META).write_text(json.dumps({"key": "winner"}))
        return {}

    found, meta = artefacts.cached(tmp_path, inputs, build_while_another_wins)
    assert found == folder and meta == {"key": "winner"} and not (folder / "mine").exists()
    assert leftovers(tmp_path) == []


def test_a_failed_build_leaves_nothing(tmp_path):
    def failing(staging):
        (staging / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        artefacts.cached(tmp_path, {"what": "fails"}, failing)
    assert built(tmp_path) == [] and leftovers(tmp_path) == []


def worker_env():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE), env.get("PYTHONPATH", "")])
    return env


def test_an_installed_artefact_is_the_built_one_and_installs_once(tmp_path):
    def build(folder):
        (folder / "model.bin").write_bytes(b"\x00\x01weights")
        return {"versions": {"x": "1"}}

    folder, meta = artefacts.cached(tmp_path / "built", {"weights": "w"}, build)
    files = artefacts.files_of(folder)
    assert files == {"model.bin": b"\x00\x01weights"}
    other = tmp_path / "actor"
    installed = artefacts.install(other, files, meta)
    assert installed.name == folder.name and artefacts.read_meta(installed) == meta
    assert artefacts.files_of(installed) == files
    # A second install of the key leaves the first as it is; nothing half-written stays.
    assert artefacts.install(other, {"model.bin": b"other"}, meta) == installed
    assert artefacts.files_of(installed) == files
    assert sorted(p.name for p in other.iterdir() if p.is_dir()) == [folder.name]
