"""Training a `VideoPrismVideoClassifier` on labelled video files: what `videoprism train` does.

    DIR/<label>/*.mp4 ─ labelled_videos ─→ labels, videos, targets
      ─ train: frozen backbone → its features once per clip (`apps.embed_videos`),
               then the pooler and the head fit on them, epoch after epoch;
               `lora_rank` or `full` → the backbone trains too: the clips are decoded
               once (`decode_clips`) and the pixels go through it every epoch
      ─→ TrainedClassifier(model, losses, paths, failures)

A file that cannot be read is skipped and listed in the result's `failures`; a label left
with no readable clip is an error, since nothing would teach it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .classifier import VideoPrismVideoClassifier
from .finetune import with_remat
from .progress import progress_bar, step_bar
from .video import Sampling

# (path, why it failed) of each video that could not be read.
Failures = list[tuple[str, str]]


@dataclass
class TrainedClassifier:
    """What `train` returns.

    Attributes:
        model: `VideoPrismVideoClassifier`. The trained classifier (a new object when the
            backbone trained too).
        losses: list of float. The training loss after each epoch.
        paths: list of str. The videos it was trained on, in order.
        failures: list of (str, str). (path, why) of each video that was skipped.
        evaluation: dict or None. `evaluate`'s result on the held-out clips, if any.
    """

    model: VideoPrismVideoClassifier
    losses: list[float] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    failures: Failures = field(default_factory=list)
    evaluation: dict | None = None

    def as_dict(self) -> dict:
        """The facts as plain data (the model left out): labels, losses, clips, failures,
        and the held-out evaluation (`evaluate`'s; None without held-out clips)."""
        return {"labels": self.model.labels, "losses": self.losses, "clips": len(self.paths),
                "failures": self.failures, "evaluation": self.evaluation}  # fmt: skip


def labelled_videos(folder: str | Path) -> tuple[list[str], list[str], list[int]]:
    """A folder holding one sub-folder of videos per label → (labels, videos, targets).

    Labels are the sub-folders' names, sorted; `targets[i]` is the index in `labels` of
    `videos[i]`. Each sub-folder is walked as `apps.find_videos` walks a folder.

    Args:
        folder: str or `Path`. The folder (`DIR/<label>/*`).

    Raises:
        ValueError: fewer than two sub-folders, or a sub-folder with no video.
        FileNotFoundError: a link in it that dangles or loops.
    """
    from .apps import find_videos

    root = Path(folder)
    classes = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(classes) < 2:
        raise ValueError(f"{folder} needs one sub-folder of videos per label, at least two")
    videos, targets = [], []
    for target, label in enumerate(classes):
        found = find_videos([label])
        videos += found
        targets += [target] * len(found)
    return [c.name for c in classes], videos, targets


def with_trainable_backbone(
    model: VideoPrismVideoClassifier, lora_rank: int | None = None, remat: bool = False
) -> VideoPrismVideoClassifier:
    """The classifier rebuilt around a backbone that trains: LoRA adapters of `lora_rank`,
    or (`lora_rank=None`) all of it. The pooler and the head keep their weights.

    Args:
        model: `VideoPrismVideoClassifier`. The classifier to start from. Without
            `remat` the new one shares its backbone, which then trains (and gets the
            adapters) for both.
        lora_rank: int or None. The adapters' rank; None trains the whole backbone.
            Defaults to `None`.
        remat: bool. Recompute activations in the backward pass (less memory), on a copy
            of the backbone. Defaults to `False`.
    """
    backbone = with_remat(model.backbone) if remat else model.backbone
    tuned = type(model)(backbone, model.num_classes, labels=model.labels,
                        freeze_backbone=False, lora_rank=lora_rank)  # fmt: skip
    for source, target in ((model.pooler, tuned.pooler), (model.head, tuned.head)):
        target.set_weights(source.get_weights())
    return tuned


def decode_clips(
    videos: Sequence[str], num_frames: int, size: int | Sequence[int], progress: bool = False
) -> tuple[np.ndarray, list[str], Failures]:
    """Every video decoded as `video.load_video` decodes it, the unreadable ones skipped.

    Args:
        videos: sequence of str. Video files (or anything `load_video` reads).
        num_frames: int. Frames per clip.
        size: int or (height, width). Frame size.
        progress: bool. A progress bar over the videos. Defaults to `False`.

    Returns:
        (pixels, paths, failures): the clips of the videos that decoded as one
        (N, num_frames, H, W, 3) float32 array, their paths, and (path, why) of the others.
    """
    from .video import VideoDecodeError, load_video

    clips, paths, failures = [], [], []
    bar = progress_bar(progress, len(videos), unit="video", desc="decoding")
    for path in videos:
        try:
            clips.append(load_video(path, num_frames, size))
            paths.append(path)
        except VideoDecodeError as err:
            failures.append((path, str(err)))
        bar.update(1)
    bar.close()
    if not clips:  # an empty batch of the right shape
        height, width = Sampling(num_frames, size).size
        return np.zeros((0, num_frames, height, width, 3), np.float32), paths, failures
    return np.stack(clips), paths, failures


def fit(model: VideoPrismVideoClassifier, inputs: Any, targets: np.ndarray | None = None, *,
        epochs: int, learning_rate: float, batch_size: int,
        progress: bool = False) -> list[float]:  # fmt: skip
    """The training loop of `train` (and of `apps.evaluation.probe`'s attentive probe):
    Adam and `model`'s loss, over `inputs` (`{"features"}` or `{"pixel_values"}`) and
    `targets` (class indices, or (N, C) 0/1 for a multi-label model); the loss of each epoch.

    Args:
        model: `VideoPrismVideoClassifier`. Trained in place.
        inputs: dict, or a `keras.utils.PyDataset` of (inputs, targets) batches (read a
            batch at a time: features too large to hold at once). What `model` takes.
        targets: (N,) int or (N, C) 0/1 array, or None where `inputs` is a dataset (which
            then shuffles itself, if it should). Defaults to `None`.
        epochs: int. Passes over the items.
        learning_rate: float. Adam's learning rate.
        batch_size: int. Items per step (a dataset's own batches are its).
        progress: bool. A bar over the steps of all epochs. Defaults to `False`.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    steps = len(inputs) if targets is None else math.ceil(len(targets) / batch_size)
    bar = [step_bar(epochs * steps)] if progress else []
    if targets is None:
        history = model.fit(inputs, epochs=epochs, verbose=0, callbacks=bar, shuffle=False)
    else:
        history = model.fit(inputs, targets, epochs=epochs, batch_size=batch_size, verbose=0,
                            callbacks=bar)  # fmt: skip
    return [float(x) for x in history.history["loss"]]


def train(
    model: VideoPrismVideoClassifier,
    videos: Sequence[str],
    targets: Sequence[int],
    *,
    epochs: int = 20,
    learning_rate: float = 1e-3,
    batch_size: int = 4,
    num_frames: int | None = None,
    size: int | Sequence[int] | None = None,
    lora_rank: int | None = None,
    full: bool = False,
    remat: bool = False,
    progress: bool = False,
    on_decoded: Callable[[Failures, int], None] | None = None,
    held_out: tuple[Sequence[str], Sequence[int]] | None = None,
) -> TrainedClassifier:
    """Trains `model` on `videos` and their `targets` (class indices); Adam, `model`'s loss.

    With the backbone frozen (the default) it runs once per clip and the pooler and the
    head train on its cached features; `lora_rank` or `full` train the backbone too, on
    the decoded pixels. Videos that cannot be read are skipped.

    Args:
        model: `VideoPrismVideoClassifier`. Its `labels` name the classes in messages.
        videos: sequence of str. Video files.
        targets: sequence of int. The class of each video, in `[0, model.num_classes)`.
        epochs: int. Passes over the clips. Defaults to `20`.
        learning_rate: float. Adam's learning rate. Defaults to `1e-3`.
        batch_size: int. Clips per step (and per backbone call). Defaults to `4`.
        num_frames: int or None. Frames per clip. Defaults to the backbone's.
        size: int, (height, width) or None. Frame size. Defaults to the backbone's.
        lora_rank: int or None. Also train LoRA adapters of this rank in the backbone.
            Defaults to `None`.
        full: bool. Also train the whole backbone. Defaults to `False`.
        remat: bool. With `lora_rank` or `full`: recompute activations in the backward
            pass, for less memory. Defaults to `False`.
        progress: bool. Progress bars while the clips are read (or embedded) and over
            the training steps of all epochs. Defaults to `False`.
        on_decoded: callable or None. Called as `on_decoded(failures, n)` once the clips
            are read, before any training (`n` clips were read); it may raise to stop.
            Defaults to `None`.
        held_out: (videos, targets) or None. Clips not trained on, measured after
            training (`evaluate`, same sampling). Defaults to `None`.

    Returns:
        `TrainedClassifier`: the model (a new object if the backbone trained), the loss
        of each epoch, the clips trained on, the videos skipped, the held-out metrics.

    Raises:
        ValueError: `lora_rank` and `full` both given, or no video could be read (the
            backbone frozen: `apps.embed_videos`' error).
        RuntimeError: no video could be read (the backbone training), or a class has
            no readable video.
    """
    if lora_rank is not None and full:
        raise ValueError(f"give lora_rank or full, not both. Received: lora_rank={lora_rank}, "
                         "full=True")  # fmt: skip
    classes = dict(zip(videos, targets, strict=True))
    backbone = model.backbone
    sampling = Sampling.for_model(backbone, num_frames, size)
    num_frames, size = sampling.num_frames, sampling.size
    if lora_rank is not None or full:  # the backbone trains: pixels every epoch
        model = with_trainable_backbone(model, lora_rank, remat)
        pixels, paths, failures = decode_clips(list(videos), num_frames, size, progress)
        inputs = {"pixel_values": pixels}
    else:  # the backbone is frozen: run it once per clip, then train on the cached features
        from .apps import embed_videos

        embeddings = embed_videos(backbone, list(videos), kind="features",
                                  batch_size=batch_size, num_frames=num_frames, size=size,
                                  progress=progress, on_error="skip")  # fmt: skip
        inputs = {"features": embeddings.vectors}
        paths, failures = embeddings.paths, embeddings.failures
    if on_decoded is not None:
        on_decoded(failures, len(paths))
    if not paths:
        raise RuntimeError("no readable clip to train on (see the skipped files above)")
    labels = model.labels or [f"class {i}" for i in range(model.num_classes)]
    found = np.array([classes[p] for p in paths])
    empty = [label for i, label in enumerate(labels) if not (found == i).any()]
    if empty:
        raise RuntimeError(f"no readable clip for label(s) {', '.join(empty)}: nothing to learn "
                           "them from (see the skipped files above)")  # fmt: skip
    losses = fit(model, inputs, found, epochs=epochs, learning_rate=learning_rate,
                 batch_size=batch_size, progress=progress)  # fmt: skip
    # Saved with the model: its head learnt features of clips sampled this way.
    model.trained_sampling = {"num_frames": int(num_frames), "size": [int(s) for s in size]}
    evaluation = None
    if held_out is not None:
        evaluation = evaluate(model, *held_out, batch_size=batch_size, num_frames=num_frames,
                              size=size, progress=progress)  # fmt: skip
    return TrainedClassifier(model, losses, list(paths), list(failures), evaluation)


def evaluate(model: VideoPrismVideoClassifier, videos: Sequence[str], targets: Sequence[int],
             *, batch_size: int = 4, num_frames: int | None = None,
             size: int | Sequence[int] | None = None, progress: bool = False) -> dict:  # fmt: skip
    """A trained single-label classifier measured on held-out videos as `videoprism eval`
    measures (`apps.evaluation.metrics`): top-1, top-5 and mean per-class accuracy.

    The backbone (as trained: LoRA adapters included) runs once per clip for its features;
    unreadable videos are skipped and listed.

    Args:
        model: `VideoPrismVideoClassifier`. The classifier.
        videos: sequence of str. Video files.
        targets: sequence of int. The class of each, in `[0, model.num_classes)`.
        batch_size: int. Clips per backbone call. Defaults to `4`.
        num_frames: int or None. Frames per clip (the training's). Defaults to None:
            the backbone's.
        size: int, (height, width) or None. Frame size (the training's). Defaults to
            None: the backbone's.
        progress: bool. A bar over the clips. Defaults to `False`.

    Returns:
        dict: "top1", "top5", "mean_class_accuracy" (fractions in [0, 1]), "clips" (how
        many were measured) and "failures" ((path, why) of those skipped).

    Raises:
        ValueError: no video could be read.
    """
    from .apps import embed_videos
    from .apps.evaluation import metrics

    classes = dict(zip(videos, targets, strict=True))
    embeddings = embed_videos(model.backbone, list(videos), kind="features",
                              batch_size=batch_size, num_frames=num_frames, size=size,
                              progress=progress, on_error="skip")  # fmt: skip
    logits = model.predict({"features": embeddings.vectors}, batch_size=batch_size, verbose=0)
    found = [classes[path] for path in embeddings.paths]
    top = metrics.top_k(logits, found, ks=(1, 5))
    return {"top1": top["top1"], "top5": top["top5"],
            "mean_class_accuracy": metrics.mean_class_accuracy(logits, found),
            "clips": len(found), "failures": list(embeddings.failures)}  # fmt: skip
