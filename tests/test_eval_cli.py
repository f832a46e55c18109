"""`videoprism eval retrieval` and `eval classification`: bad input is one line before the
model loads; end to end on a generated dataset (distinct lavfi videos, a caption CSV and a
label CSV), the small LvT checkpoint writes the result JSON with the record's fields, a
second run embeds nothing (the cache), missing and undecodable videos are counted and
the missing ones named; its figures are those of the cached embeddings ranked here anew,
and `eval report` merges the two tasks' JSON."""

import argparse
import json

import numpy as np
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
    # Benchmarks' files whose errors name flags: Kinetics with two splits, a user's table
    # named after Kinetics, DeepMind's validate.csv, VATEX; and a folder without the videos.
    kinetics = "label,youtube_id,time_start,time_end,split\n"
    (folder / "kinetics_400.csv").write_text(kinetics + "dance,a,0,10,val\nsing,b,0,10,train\n")
    (folder / "kinetics_mine.csv").write_text("path,label\nv0.mp4,pattern\n")
    (folder / "validate.csv").write_text(kinetics + "dance,a,0,10,val\n")
    vatex = [{"videoID": "v0", "enCap": ["a test pattern"]}]
    (folder / "vatex_validation_v1.0.json").write_text(json.dumps(vatex))
    (folder / "empty").mkdir()
    return folder


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
        (["retrieval", "{d}/captions.csv", "--cache", "{d}/v0.mp4"], "--cache {d}/v0.mp4: expect"),
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
        (["retrieval", "{d}/captions.csv", "--videos", "{d}/nowhere"],
         "--videos {d}/nowhere: no such folder; expected the folder holding the videos"),
        (["retrieval", "{d}/captions.csv", "--videos", "{d}/v0.mp4"], "--videos {d}/v0.mp4: is"),
        (["retrieval", "{d}/captions.csv", "--videos", "{d}/empty"],
         "expected the folder holding them (--videos)"),
        (["classification", "{d}/kinetics_400.csv"], "choose one (--split)"),
        (["classification", "{d}/kinetics_mine.csv"],
         "(--format kinetics was taken from the file name; --format csv reads it as a generic"),
        (["classification", "{d}/validate.csv"], "a Kinetics file: --format kinetics reads it"),
        (["retrieval", "{d}/vatex_validation_v1.0.json", "--split", "private"],
         "--split: expected a file listing VATEX videoIDs"),
        (["retrieval", "{d}/captions.csv", "--split", "val"], "to choose --split val from"),
        (["classification", "{d}/kinetics_400.csv", "--split", "test"], "no row has split 'test'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_before_the_model_loads(data, args, says, capsys):
    fill = lambda text: text.format(d=data)  # noqa: E731
    # A preset that does not exist: the error must come before anything loads it.
    out = call(capsys, "eval", *map(fill, args), "--preset", "/nonexistent/model.npz")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and fill(says) in out.stderr, out.stderr


def test_a_second_annotation_file_is_named_by_its_own_flags(data):
    # As `eval probe` reads --val: its file, videos and split have flags of their own.
    from videoprism_keras.cli.evaluate_common import read_data
    from videoprism_keras.cli.parser import UsageError

    flags = {"data": "--val", "videos": "--val-videos", "split": "--val-split"}
    given = argparse.Namespace(data=str(data / "kinetics_400.csv"), format=None, videos=None,
                               split=None)  # fmt: skip
    with pytest.raises(UsageError) as caught:
        read_data(given, "classification", flags)
    said = str(caught.value)
    assert said.startswith(f"--val {data / 'kinetics_400.csv'}: holds splits val, train")
    assert said.endswith("choose one (--val-split)")
    given.videos = str(data / "nowhere")
    with pytest.raises(UsageError, match=f"^--val-videos {data / 'nowhere'}: no such folder"):
        read_data(given, "classification", flags)


def test_missing_videos_are_counted_and_the_first_few_named():
    from videoprism_keras.apps.evaluation.datasets import Clip, Dataset
    from videoprism_keras.cli.evaluate_common import missing_lines
    from videoprism_keras.constants import EVAL_MISSING_SHOWN

    gone = [f"/videos/gone{i}.mp4" for i in range(EVAL_MISSING_SHOWN + 2)]
    dataset = Dataset("csv:x", "csv", "retrieval", "/x.csv", [Clip("/videos/here.mp4")], gone,
                      len(gone) + 1, missing_queries=9)  # fmt: skip
    lines = missing_lines(dataset)
    head = f"x.csv: {len(gone)} of {len(gone) + 1} videos not found (with their 9 captions)"
    assert lines[0] == head + ", not measured:"
    assert [line.strip() for line in lines[1:-1]] == gone[:EVAL_MISSING_SHOWN]
    assert lines[-1] == "  … and 2 more (the record lists them all)"
    dataset.missing = []
    assert missing_lines(dataset) == []


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


def _ranks(scores, relevant):
    """Each query's rank (rows: queries): 1 + the others scoring at least its best relevant
    one, counted here apart from `metrics.py`."""
    scores, relevant = np.asarray(scores, np.float64), np.asarray(relevant, bool)
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)
    return 1 + ((scores >= best) & ~relevant).sum(axis=1)


def _cached(record, cache, golden_dir, media_dir, dataset, texts):
    """The run's embeddings, read back from its cache (embedding nothing)."""
    from videoprism_keras import VideoPrismBackbone
    from videoprism_keras.apps.evaluation.cache import EmbeddingCache
    from videoprism_keras.tokenizer import VideoPrismTokenizer

    model = VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                           attention_logit_soft_cap=5.0)  # fmt: skip
    store = EmbeddingCache(cache, record["model"]["key"], dataset.name)
    videos = store.videos(model, dataset.clips, num_frames=2, size=36, progress=False)
    assert videos.embedded == 0
    tokenizer = VideoPrismTokenizer(str(media_dir / "test_spm.model"))
    return videos, store.texts(model, tokenizer, texts, progress=False)


def test_retrieval_and_classification_end_to_end(data, model, lora_adapter, env, tmp_path,
                                                 golden_dir, media_dir):  # fmt: skip
    from videoprism_keras.apps.evaluation.datasets import read_dataset

    out, cache = tmp_path / "results", tmp_path / "cache"
    common = [*model, "--cache", cache]
    retrieval = ["eval", "retrieval", data / "captions.csv", *common, "-o", out]
    classification = ["eval", "classification", data / "labels.csv", "--templates",
                      data / "templates.txt", *common]  # fmt: skip
    # The --strict run is the classification's again: its videos and prompts all cached,
    # it embeds (and compiles) nothing, fails on the broken video and writes nothing.
    runs = run_all(env, [*retrieval, "--json"], [*classification, "-o", out],
                   [*retrieval, "--lora", lora_adapter, "--json"],
                   [*classification, "--strict", "-o", tmp_path / "strict"],
                   ["eval", "report", out, "--json"],
                   ok=False)  # fmt: skip
    first, labels, tuned, strict, report = runs
    for run in (first, labels, tuned, report):
        assert run.returncode == 0, run.stderr[-2000:]

    record = json.loads(first.stdout)
    assert set(record) == {"schema", "task", "dataset", "model", "sampling", "items", "missing",
                           "metrics", "intervals", "bootstrap", "settings", "settings_key",
                           "versions", "created"}  # fmt: skip
    assert record["task"] == "retrieval"
    assert record["items"] == {
        "used": 4,
        "missing": 1,
        "failed": 0,
        "total": 5,
        "missing_queries": 1,
    }
    assert record["missing"] == [str(data / "gone.mp4")]
    assert record["sampling"] == {"num_frames": 2, "size": 36}
    assert record["bootstrap"] == {"samples": 20, "level": 0.95, "seed": 0}
    assert record["model"]["source"].endswith("lvt_small.ckpt.npz") and record["model"]["key"]
    assert record["settings"]["captions"] == 5
    names = {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")}
    assert set(record["metrics"]) == set(record["intervals"]) == names
    assert "videos: 4 embedded, 0 from the cache" in first.stderr
    # The missing video is named before the run, with the caption not asked.
    assert "captions.csv: 1 of 5 videos not found (with their 1 caption)" in first.stderr
    assert str(data / "gone.mp4") in first.stderr

    # The figures are the cached embeddings' ranks, counted here anew.
    captions = read_dataset(data / "captions.csv")
    videos, texts = _cached(record, cache, golden_dir, media_dir, captions, captions.captions)
    scores = texts @ videos.vectors.T  # (captions, clips)
    owner = np.asarray(captions.caption_clip)
    t2v = _ranks(scores, owner[:, None] == np.arange(len(captions.clips)))
    v2t = _ranks(scores.T, np.arange(len(captions.clips))[:, None] == owner)
    for direction, ranks in (("t2v", t2v), ("v2t", v2t)):
        for k in (1, 5, 10):
            assert record["metrics"][f"{direction}_R@{k}"] == pytest.approx(np.mean(ranks <= k))
        assert record["metrics"][f"{direction}_MdR"] == pytest.approx(np.median(ranks))
        assert record["metrics"][f"{direction}_MnR"] == pytest.approx(np.mean(ranks))

    # Without --json: the summary, and the file written.
    (written,) = out.glob("*csv_labels*classification.json")
    assert "items: 4 used, 1 missing, 1 failed, of 6" in labels.stdout
    assert "top1" in labels.stdout and f"wrote {written}" in labels.stdout
    chosen = json.loads(written.read_text())
    assert chosen["items"] == {
        "used": 4,
        "missing": 1,
        "failed": 1,
        "total": 6,
        "missing_queries": 0,
    }
    assert set(chosen["metrics"]) == {"top1", "top5", "mean_class_accuracy"}
    assert chosen["settings"]["templates"] == ["a video of {}.", "footage of {}"]
    assert chosen["settings"]["template_set"] == "file:templates.txt"
    assert "broken.mp4" in labels.stderr
    # Its figures too: each label's prompts averaged (CLIP's ensemble), each clip's rank.
    named = read_dataset(data / "labels.csv")
    templates = chosen["settings"]["templates"]
    asked = [t.replace("{}", label) for t in templates for label in named.labels]
    clips, prompts = _cached(chosen, cache, golden_dir, media_dir, named, asked)
    mean = prompts.reshape(len(templates), len(named.labels), -1).mean(axis=0)
    mean /= np.linalg.norm(mean, axis=-1, keepdims=True)
    targets = [t for t, ok in zip(named.targets, clips.ok, strict=True) if ok]
    truth = np.asarray(targets)[:, 0][:, None] == np.arange(len(named.labels))
    ranks = _ranks(clips.vectors @ mean.T, truth)
    assert chosen["metrics"]["top1"] == pytest.approx(np.mean(ranks == 1))
    assert chosen["metrics"]["top5"] == pytest.approx(np.mean(ranks <= 5))

    # Adapters: another model, so another cache key (embedded anew) and another file.
    adapted = json.loads(tuned.stdout)
    assert adapted["model"]["lora"] == [str(lora_adapter)]
    assert adapted["model"]["name"] == record["model"]["name"] + "+tuned.lora"
    assert adapted["model"]["key"] != record["model"]["key"]
    assert "videos: 4 embedded, 0 from the cache" in tuned.stderr
    assert len(list(out.glob("*__retrieval.json"))) == 2

    # The same run again (--strict): nothing embedded, and on its failure nothing written.
    assert "videos: 0 embedded, 4 from the cache" in strict.stderr, strict.stderr
    assert strict.returncode == 1 and "--strict" in strict.stderr
    assert not (tmp_path / "strict").exists()

    # `eval report` merges them: both tasks' rows, each with the figure its JSON holds.
    rows = json.loads(report.stdout)
    top1 = [r for r in rows if (r["task"], r["metric"]) == ("classification", "top1")]
    assert len(top1) == 1 and top1[0]["ours"] == pytest.approx(100 * chosen["metrics"]["top1"])
    recalls = [r for r in rows if (r["task"], r["metric"]) == ("retrieval", "t2v_R@1")]
    assert sorted(r["model"] for r in recalls) == sorted([record["model"]["name"],
                                                          adapted["model"]["name"]])  # fmt: skip
