"""`videoprism eval retrieval` and `eval classification`: bad input is one line before the
model loads; end to end on a generated dataset (distinct lavfi videos, a caption CSV and a
label CSV), the small LvT checkpoint writes the result JSON with the record's fields, a
second run embeds nothing (the cache), missing and undecodable videos are counted."""

import json

import pytest
from cli_helpers import call, run_all
from videos import lavfi_video

SOURCES = ("testsrc2", "mandelbrot", "life", "rgbtestsrc")
CAPTIONS = ("a test pattern", "a fractal zoom", "cells that live and die", "colour bars")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four short distinct videos; captions (the first video twice) and labels, each CSV
    naming one video that is not there; the labels also one that is not a video."""
    folder = tmp_path_factory.mktemp("eval")
    for i, source in enumerate(SOURCES):
        lavfi_video(folder / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 50)
    rows = [f"v{i}.mp4,{caption}" for i, caption in enumerate(CAPTIONS)]
    rows += ["v0.mp4,bars and a moving square", "gone.mp4,never seen"]
    (folder / "captions.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    labels = [f"v{i}.mp4,{name}" for i, name in enumerate(("pattern", "fractal", "life",
                                                            "bars"))]  # fmt: skip
    labels += ["broken.mp4,bars", "gone.mp4,life"]
    (folder / "labels.csv").write_text("path,label\n" + "\n".join(labels) + "\n")
    (folder / "templates.txt").write_text("a video of {}.\n# a comment\nfootage of {}\n")
    return folder


@pytest.fixture(scope="module")
def adapters(golden_dir, tmp_path_factory):
    """LoRA adapters of the small checkpoint, B not zero: they change what it embeds."""
    import keras

    from videoprism_keras import VideoPrismBackbone

    model = VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                           attention_logit_soft_cap=5.0)  # fmt: skip
    model.enable_lora(1)
    for variable in model.trainable_variables:
        variable.assign(keras.random.normal(variable.shape, stddev=0.05, seed=0))
    path = tmp_path_factory.mktemp("lora") / "tuned.lora.h5"
    model.save_lora_weights(path)
    return path


@pytest.fixture(scope="module")
def model(golden_dir, media_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--tokenizer",
            media_dir / "test_spm.model", "--num-frames", "2", "--size", "36",
            "--no-progress", "--bootstrap", "20"]  # fmt: skip


@pytest.mark.parametrize(
    "args, says",
    [
        (["retrieval", "{d}/nope.csv"], "{d}/nope.csv: no such file; expected the annotation"),
        (["retrieval", "{d}"], "{d}: is a folder"),
        (["retrieval", "{d}/captions.csv", "--format", "imagenet"], "argument --format: invalid"),
        (["retrieval", "{d}/captions.csv", "-o", "{d}/v0.mp4"], "-o {d}/v0.mp4: expected a folder"),
        (["retrieval", "{d}/captions.csv", "--lora", "{d}/a.lora.h5"], "--lora {d}/a.lora.h5: no"),
        (["retrieval", "{d}/captions.csv", "--bootstrap", "0"], "--bootstrap: expected a positive"),
        (
            ["classification", "{d}/labels.csv", "--templates", "many"],
            "--templates many: expected official",
        ),
        (
            ["classification", "{d}/labels.csv", "--templates", "{d}/captions.csv"],
            "--templates {d}/captions.csv, line 1: expected a template",
        ),
        (["classification", "{d}/captions.csv"], "is a retrieval dataset"),
        (["retrieval", "{d}/labels.csv"], "is a classification dataset"),
        (["retrieval", "{d}/captions.csv", "--videos", "{d}/nowhere"], "{d}/nowhere"),
    ],
)
def test_bad_input_is_one_line_before_the_model_loads(data, args, says, capsys):
    fill = lambda text: text.format(d=data)  # noqa: E731
    # A preset that does not exist: the error must come before anything loads it.
    out = call(capsys, "eval", *map(fill, args), "--preset", "/nonexistent/model.npz")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and fill(says) in out.stderr, out.stderr


def test_eval_report_needs_no_model_package_and_the_tasks_do(monkeypatch):
    import argparse

    from videoprism_keras.cli import requirements
    from videoprism_keras.extras import MissingExtra

    monkeypatch.setattr(requirements, "missing", lambda packages: list(packages))  # none there
    args = lambda task: argparse.Namespace(command="eval", task=task, preset=None)  # noqa: E731
    requirements.check(args("report"))  # JSON in, Markdown and CSV out: nothing to install
    for task in ("retrieval", "classification"):
        with pytest.raises(MissingExtra) as needs:
            requirements.check(args(task))
        assert all(p in str(needs.value) for p in ("lancedb", "av", "sentencepiece", "jax"))


def test_retrieval_and_classification_end_to_end(data, model, adapters, env, tmp_path):
    out, cache = tmp_path / "results", tmp_path / "cache"
    common = [*model, "--cache", cache, "-o", out]
    retrieval = ["eval", "retrieval", data / "captions.csv", *common]
    runs = run_all(env, [*retrieval, "--json"], retrieval,
                   ["eval", "classification", data / "labels.csv", "--templates",
                    data / "templates.txt", *common],
                   [*retrieval, "--lora", adapters, "--json"],
                   ["eval", "classification", data / "labels.csv", "--strict", *common],
                   ok=False)  # fmt: skip
    first, second, labels, tuned, strict = runs
    for run in runs[:4]:
        assert run.returncode == 0, run.stderr[-2000:]

    record = json.loads(first.stdout)
    assert set(record) == {"schema", "task", "dataset", "model", "sampling", "items", "metrics",
                           "intervals", "bootstrap", "settings", "versions", "created"}  # fmt: skip
    assert record["task"] == "retrieval"
    assert record["items"] == {"used": 4, "missing": 1, "failed": 0, "total": 5}
    assert record["sampling"] == {"num_frames": 2, "size": 36}
    assert record["bootstrap"] == {"samples": 20, "level": 0.95, "seed": 0}
    assert record["model"]["source"].endswith("lvt_small.ckpt.npz") and record["model"]["key"]
    assert record["settings"]["captions"] == 5
    names = {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}
    assert set(record["metrics"]) == set(record["intervals"]) == names
    assert all(0 <= record["metrics"][f"{d}_R@{k}"] <= 1 for d in ("t2v", "v2t")
               for k in (1, 5, 10))  # fmt: skip
    assert record["metrics"]["t2v_R@5"] == 1.0  # 4 clips: every caption within 5
    assert "videos: 4 embedded, 0 from the cache" in first.stderr

    # The same run again: nothing embedded, the same figures, written over the same file.
    assert "videos: 0 embedded, 4 from the cache" in second.stderr, second.stderr
    assert "items: 4 used, 1 missing, 0 failed, of 5" in second.stdout
    assert "t2v_R@1" in second.stdout
    again = json.loads((out / "lvt_small.ckpt__csv_captions__retrieval.json").read_text())
    assert again["metrics"] == record["metrics"]

    chosen = json.loads((out / "lvt_small.ckpt__csv_labels__classification.json").read_text())
    assert chosen["items"] == {"used": 4, "missing": 1, "failed": 1, "total": 6}
    assert set(chosen["metrics"]) == {"top1", "top5", "mean_class_accuracy"}
    assert chosen["metrics"]["top5"] == 1.0  # four labels
    assert chosen["settings"]["templates"] == ["a video of {}.", "footage of {}"]
    assert "broken.mp4" in labels.stderr

    # Adapters: another model, so another cache key (embedded anew) and another file.
    adapted = json.loads(tuned.stdout)
    assert adapted["model"]["lora"] == [str(adapters)]
    assert adapted["model"]["name"] == record["model"]["name"] + "+tuned.lora"
    assert adapted["model"]["key"] != record["model"]["key"]
    assert "videos: 4 embedded, 0 from the cache" in tuned.stderr
    assert len(list(out.glob("*__retrieval.json"))) == 2

    assert strict.returncode == 1 and "--strict" in strict.stderr
