"""Video-text contrastive fine-tuning of an LvT backbone: the task model, its data, recall.

    (video, caption) pairs ─ PairDataset (a keras.utils.PyDataset; workers decode the
    next batches while the model trains on this one)
      ─ VideoPrismContrastive: video and text embeddings (B, D), L2-normalised
      ─ logits = exp(log_scale) · V Tᵀ (B, B); the diagonal holds the true pairs
      ─ loss = ½ (cross-entropy over rows + over columns): symmetric InfoNCE with the
        other captions and videos of the batch as negatives.

The scale is learnable and starts at 1 / `constants.TEMPERATURE`, the temperature the
released models are used with. Either tower may be frozen, or only LoRA adapters
trained (`model/lora.py`). `retrieval_recall` gives text→video and video→text
recall@K as `videoprism eval retrieval` counts them; `run` is what `videoprism finetune`
does (checkpoint per epoch, resumable).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from .apps.evaluation.metrics import RECALL_KS
from .constants import (
    FINETUNE_LEARNING_RATE,
    FROZEN_TOWERS,
    LORA_FILE_SUFFIX,
    PAIR_END_SLACK_S,
    TEMPERATURE,
)
from .deprecation import renamed_keys
from .model import lora
from .tables import table_rows
from .video import Sampling

if TYPE_CHECKING:
    from .model.backbone import VideoPrismBackbone
    from .tokenizer import VideoPrismTokenizer

# (video path, caption, start seconds or None, end seconds or None): one training pair.
Pair = tuple[str, str, float | None, float | None]

# The scale's ceiling (CLIP's): exp(log_scale) may not pass 100, so that a few steps of
# a large learning rate cannot make the logits explode.
MAX_LOG_SCALE = math.log(100.0)
CHECKPOINT_PATTERN = "checkpoint-{:04d}.keras"
STATE_FILE = "state.json"
ADAPTERS_FILE = "adapters.lora.h5"


@keras.saving.register_keras_serializable(package="videoprism_keras")
class VideoPrismContrastive(keras.Model):
    """An LvT backbone trained on (video, caption) pairs with the symmetric InfoNCE loss.

    Args:
        backbone: `VideoPrismBackbone`. A multimodal (LvT) backbone.
        temperature: float. The softmax temperature to start from.
            Defaults to `constants.TEMPERATURE`.
        learn_temperature: bool. Train the temperature with the rest. Defaults to `True`.
        freeze: None, "video" or "text". Keep that tower fixed; None trains both.
            Defaults to `None`.
        lora_rank: int or None. If set, `backbone.enable_lora(lora_rank)`: only the
            adapters train (plus the temperature). Defaults to `None`.

    Inputs: `{"pixel_values" (B, T, H, W, 3), "token_ids", "padding_mask" (B, L)}`.
    Output: the (B, B) logits, videos along rows, captions along columns.
    """

    def __init__(self, backbone: VideoPrismBackbone, temperature: float = TEMPERATURE,
                 learn_temperature: bool = True, freeze: str | None = None,
                 lora_rank: int | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(dtype=kwargs.pop("dtype", backbone.dtype_policy), **kwargs)
        if not getattr(backbone, "is_multimodal", False):
            raise ValueError(
                "VideoPrismContrastive needs a multimodal (LvT) backbone with a text encoder. "
                f"Received: backbone={type(backbone).__name__}"
            )
        if freeze not in (None, *FROZEN_TOWERS):
            raise ValueError(
                f"freeze must be one of {(None, *FROZEN_TOWERS)}. Received: freeze={freeze!r}"
            )
        if not temperature > 0:
            raise ValueError(f"temperature must be positive. Received: temperature={temperature}")
        self.backbone = backbone
        self.temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)
        self.freeze = freeze
        self.lora_rank = lora_rank
        if lora_rank is not None:
            backbone.enable_lora(int(lora_rank))
        if freeze is not None:
            for layer in _tower(backbone, freeze):
                layer.trainable = False
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(-math.log(self.temperature)),
            trainable=self.learn_temperature,
            dtype="float32",
        )
        self.built = True

    def embed(self, inputs: dict, training: bool | None = None) -> tuple:
        """(video embeddings, text embeddings), both (B, D) and L2-normalised, of the
        inputs `{"pixel_values", "token_ids", "padding_mask"}`."""
        # A frozen tower runs in inference mode (no dropout), as a frozen backbone does.
        video_training = training and self.freeze != "video"
        text_training = training and self.freeze != "text"
        video = self.backbone.encode_video(inputs["pixel_values"], training=video_training)
        text = self.backbone.encode_text(
            inputs["token_ids"], inputs["padding_mask"], training=text_training
        )
        return video["vision_embeddings"], text

    def call(self, inputs: dict, training: bool | None = None) -> Any:
        """The (B, B) logits: scaled cosine similarities, videos along rows."""
        video, text = self.embed(inputs, training)
        scale = ops.exp(ops.minimum(self.log_scale, MAX_LOG_SCALE))
        video, text = ops.cast(video, "float32"), ops.cast(text, "float32")
        return scale * ops.matmul(video, ops.transpose(text))

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:  # fmt: skip
        """Symmetric InfoNCE on the logits; `y` is not used (pair i is the target of i)."""
        return contrastive_loss(y_pred)

    def save(self, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
        """`keras.Model.save`. LoRA adapters are merged into the saved kernels (Keras
        saves a LoRA layer so); `backbone.save_lora_weights` keeps them apart."""
        super().save(filepath, overwrite=overwrite, **kwargs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
            "freeze": self.freeze,
            "lora_rank": self.lora_rank,
        }

    @classmethod
    def from_config(cls, config: dict) -> VideoPrismContrastive:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)


def _tower(backbone, which):
    if which == "video":
        layers = (backbone.video_encoder, backbone.auxiliary_encoder, backbone.video_pooler)
    else:
        layers = (backbone.text_encoder,)
    return [layer for layer in layers if layer is not None]


def contrastive_loss(logits: Any) -> Any:
    """½ (CE over each row + CE over each column) with the diagonal as targets, for
    (B, B) logits (a tensor); a scalar tensor."""
    logits = ops.cast(logits, "float32")
    labels = ops.arange(ops.shape(logits)[0])
    rows = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    columns = keras.losses.sparse_categorical_crossentropy(
        labels, ops.transpose(logits), from_logits=True
    )
    return 0.5 * (ops.mean(rows) + ops.mean(columns))


def retrieval_recall(video: np.ndarray, text: np.ndarray, ks: Sequence[int] = RECALL_KS, *,
                     caption_clip: Sequence[int] | None = None) -> dict[str, float]:  # fmt: skip
    """Recall@K both ways, and the median and mean rank, as `videoprism eval retrieval`
    counts them (`apps.evaluation.retrieval.retrieval_ranks`): a caption finds its clip,
    a clip is found by any of its captions.

    Args:
        video: array-like (N_clips, D). Clip embeddings, L2-normalised, each clip once.
        text: array-like (N_captions, D). Caption embeddings, L2-normalised.
        ks: sequence of int. The K of each recall. Defaults to `(1, 5, 10)`.
        caption_clip: sequence of int or None. The clip (row of `video`) of each caption.
            Defaults to None: caption i describes clip i.

    Returns:
        {"t2v_R@1": …, "t2v_MdR", "t2v_MnR", "v2t_R@1", …}: the names `eval retrieval`'s
        record uses; the former `"t2v@1"`, … too, for one release (reading one warns).
    """
    from .apps.evaluation import metrics
    from .apps.evaluation.retrieval import retrieval_ranks

    if caption_clip is None and len(video) != len(text):
        raise ValueError("video, text: expected one caption per video without caption_clip. "
                         f"Received: {len(video)} videos and {len(text)} captions")  # fmt: skip
    clip_of = list(range(len(video)) if caption_clip is None else caption_clip)
    result = {f"{direction}_{name}": value
              for direction, rank in retrieval_ranks(video, text, clip_of).items()
              for name, value in metrics.retrieval(rank, ks=ks).items()}  # fmt: skip
    former = {f"{d}@{k}": f"{d}_R@{k}" for d in ("t2v", "v2t") for k in ks}
    return renamed_keys(result, former, "finetune.retrieval_recall")


def _clip_groups(pairs):
    """The distinct clips (path, start, end) of `pairs` as one pair each, in first-seen
    order, and each pair's clip index: a clip with several captions is embedded once."""
    first = {}
    for pair in pairs:
        first.setdefault((pair[0], *pair[2:]), pair)
    order = {key: i for i, key in enumerate(first)}
    return list(first.values()), [order[(pair[0], *pair[2:])] for pair in pairs]


# ------------------------------------------------------------------------- data
def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """A CSV or parquet of `path,caption[,start,end]` → list of (path, caption, start, end).

    Relative video paths are read from the table's folder; start and end are seconds,
    or None for the whole video. Every distinct file's container header is opened once
    (nothing decoded), so that a file that is not a video is named with its row now,
    not when its batch comes up. A CSV may start with a byte-order mark (Excel's UTF-8).

    Args:
        path: str or path. The `.csv` or `.parquet` file.

    Raises:
        ValueError: naming the file (and row) and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; expected a CSV or parquet of path,caption pairs")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"{path}: expected a .csv or .parquet file of path,caption pairs")
    rows = table_rows(path, "a .parquet of pairs")
    if not rows or not {"path", "caption"} <= set(rows[0]):
        columns = sorted(rows[0]) if rows else []
        raise ValueError(
            f"{path}: expected columns path,caption (and optionally start,end); found {columns}"
        )
    pairs, durations = [], {}
    for line, row in enumerate(rows, start=2):
        video = Path(str(row["path"]))
        video = video if video.is_absolute() else path.parent / video
        caption = str(row["caption"] or "").strip()
        if not caption:
            raise ValueError(f"{path}, row {line}: empty caption")
        if video not in durations:
            durations[video] = _stated_duration(path, line, video)
        times = [row.get("start"), row.get("end")]
        if any(t not in (None, "") for t in times):
            try:
                start, end = (float(t) for t in times)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}, row {line}: start and end must both be seconds; got {times}"
                ) from None
            if not (0 <= start < end and math.isfinite(end)):
                raise ValueError(f"{path}, row {line}: needs 0 <= start < end, finite "
                                 f"seconds; got {times}")  # fmt: skip
            duration = durations[video]
            if duration and (start >= duration or end > duration + PAIR_END_SLACK_S):
                raise ValueError(f"{path}, row {line}: start {start:g}, end {end:g} s lie "
                                 f"past the end of {video} ({duration:g} s long)")  # fmt: skip
        else:
            start = end = None
        pairs.append((str(video), caption, start, end))
    return pairs


def _stated_duration(table: Path, line: int, video: Path) -> float:
    """The duration `video`'s container states (0.0 where it does not), or a ValueError
    naming the table's row: the one check that a row's file is a video, from its header
    alone (a window past the end would train on whatever frames are nearest)."""
    from .video.decode import stated_timing

    if video.is_dir():  # a folder of frames is a video elsewhere, not here: say which
        raise ValueError(f"{table}, row {line}: {video} is a folder; expected a video file")
    if not video.exists():
        raise ValueError(f"{table}, row {line}: video {video} not found")
    try:
        duration, _ = stated_timing(video)
    except ValueError as err:  # not a video (VideoDecodeError): say which row
        raise ValueError(f"{table}, row {line}: {err}") from None
    return duration


class PairDataset(keras.utils.PyDataset):
    """Batches of decoded clips and tokenized captions for `fit`.

    `workers` threads decode upcoming batches while the model trains (PyAV decodes
    without holding the GIL).

    Args:
        pairs: sequence of (path, caption, start, end). What `read_pairs` returns.
        tokenizer: `VideoPrismTokenizer`. Tokenizes the captions.
        batch_size: int. Pairs per batch.
        num_frames: int. Frames per clip.
        size: int or (height, width). Frame size.
        shuffle: bool. Reorder the pairs every epoch (seeded), whole batches only.
            Defaults to `True`.
        seed: int. The shuffle's seed. Defaults to `0`.
        text_length: int. Tokens per caption. Defaults to `64`.
        workers: int. Threads decoding ahead. Defaults to `2`.
    """

    def __init__(self, pairs: Sequence[Pair], tokenizer: VideoPrismTokenizer, batch_size: int,
                 num_frames: int, size: int | Sequence[int], shuffle: bool = True,
                 seed: int = 0, text_length: int = 64, workers: int = 2,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(workers=workers, use_multiprocessing=False, **kwargs)
        if not pairs:
            raise ValueError("no (video, caption) pairs to train on")
        self.pairs, self.tokenizer = list(pairs), tokenizer
        self.batch_size, self.num_frames, self.size = int(batch_size), num_frames, size
        self.shuffle, self.text_length = shuffle, text_length
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.pairs))
        if shuffle:
            self._rng.shuffle(self._order)

    def __len__(self) -> int:
        # Whole batches only when shuffling: every step sees `batch_size` negatives.
        full, rest = divmod(len(self.pairs), self.batch_size)
        return max(full, 1) if self.shuffle else full + bool(rest)

    def __getitem__(self, index: int) -> dict:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.batch([self.pairs[i] for i in rows])

    def batch(self, pairs: Sequence[Pair]) -> dict:
        """`{"pixel_values", "token_ids", "padding_mask"}` of these pairs, as numpy arrays."""
        from .video import load_clip, load_video

        clips = [
            load_video(path, self.num_frames, self.size)
            if start is None
            else load_clip(path, start, end, self.num_frames, self.size)
            for path, _, start, end in pairs
        ]
        ids, mask = self.tokenizer.tokenize_texts(
            [caption for _, caption, _, _ in pairs], max_length=self.text_length
        )
        return {"pixel_values": np.stack(clips), "token_ids": ids, "padding_mask": mask}

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._rng.shuffle(self._order)


def embed_pairs(
    model: VideoPrismContrastive, dataset: PairDataset, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(video, text) float32 (N, D) embeddings of every pair of `dataset` (a `PairDataset`
    in order); with `progress`, a bar over the pairs."""
    from .progress import progress_bar

    videos, texts = [], []
    bar = progress_bar(progress, len(dataset.pairs), unit="pair", desc="evaluating")
    for i in range(len(dataset)):
        batch = dataset[i]
        video, text = model.embed(batch, training=False)
        videos.append(ops.convert_to_numpy(ops.cast(video, "float32")))
        texts.append(ops.convert_to_numpy(ops.cast(text, "float32")))
        bar.update(len(videos[-1]))
    bar.close()
    return np.concatenate(videos), np.concatenate(texts)


def evaluate_recall(model: VideoPrismContrastive, pairs: Sequence[Pair],
                    tokenizer: VideoPrismTokenizer, batch_size: int, num_frames: int,
                    size: int | Sequence[int], ks: Sequence[int] = RECALL_KS,
                    progress: bool = False) -> dict[str, float]:  # fmt: skip
    """`retrieval_recall` of `model` on held-out `pairs` as `eval retrieval` measures: each
    distinct clip (path, start, end) embedded once, found by any of its captions. Arguments
    as `PairDataset`'s (`progress`: a bar over the clips)."""
    clips, caption_clip = _clip_groups(pairs)
    data = PairDataset(clips, tokenizer, batch_size, num_frames, size, shuffle=False, workers=1)
    video, _ = embed_pairs(model, data, progress)  # each clip once, with its first caption
    captions, texts = [caption for _, caption, _, _ in pairs], []
    for at in range(0, len(captions), batch_size):
        ids, mask = tokenizer.tokenize_texts(captions[at : at + batch_size], data.text_length)
        text = model.backbone.encode_text(ids, mask, training=False)
        texts.append(ops.convert_to_numpy(ops.cast(text, "float32")))
    return retrieval_recall(video, np.concatenate(texts), ks=ks, caption_clip=caption_clip)


# ------------------------------------------------------------------ the command
class _EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: the model (with its optimizer) to `checkpoint-<epoch>.keras`, its
    LoRA adapters beside it (the checkpoint holds them merged into the kernels), then
    `state.json` naming them, with the run's settings. Each is written under a temporary
    name and renamed, and the state is the commit point: a run killed at any moment
    resumes from the last epoch the state names, never half a file nor an epoch trained
    twice. Older checkpoints are removed once the state no longer names them."""

    def __init__(self, directory, history, settings):
        super().__init__()
        self.directory, self.history_log, self.settings = Path(directory), history, settings

    def on_epoch_end(self, epoch, logs=None):
        self.history_log.append({k: float(v) for k, v in (logs or {}).items()})
        name = CHECKPOINT_PATTERN.format(epoch + 1)
        _atomic(self.directory / name, lambda p: self.model.save(p), ".keras")
        state = {"epochs_done": epoch + 1, "checkpoint": name, "history": self.history_log,
                 "settings": self.settings}  # fmt: skip
        if self.model.lora_rank is not None:
            state["adapters"] = Path(name).stem + LORA_FILE_SUFFIX
            _atomic(self.directory / state["adapters"], self.model.backbone.save_lora_weights,
                    LORA_FILE_SUFFIX)  # fmt: skip
        _atomic(self.directory / STATE_FILE, lambda p: Path(p).write_text(json.dumps(state)))
        for old in self.directory.glob("checkpoint-*"):
            if old.name not in (name, state.get("adapters")):
                old.unlink()
        if self.model.lora_rank is not None:  # the adapters alone, for `load_lora_weights`
            _atomic(self.directory / ADAPTERS_FILE, self.model.backbone.save_lora_weights,
                    ".lora.h5")  # fmt: skip


def _atomic(target, write, suffix=""):
    partial = target.with_name(f".{target.name}.partial{suffix}")
    write(str(partial))
    os.replace(partial, target)


def _state(directory):
    """The state of the run in `directory`; None where there is none. A state that is
    damaged, or names a file that is gone, raises: starting over would overwrite the
    run's history without a word."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        named = [state["checkpoint"], *([state["adapters"]] if "adapters" in state else [])]
        int(state["epochs_done"]), list(state["history"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}): the run cannot "
                         f"resume; move {directory} aside to start over") from None  # fmt: skip
    missing = [name for name in named if not (Path(directory) / str(name)).is_file()]
    if missing:
        raise ValueError(f"{path} names {', '.join(map(str, missing))}, missing from "
                         f"{directory}: the run cannot resume; move {directory} aside to "
                         "start over")  # fmt: skip
    return state


def resume_state(directory: str | os.PathLike) -> tuple[int, list[dict]]:
    """(epochs done, each epoch's logs) of an earlier run in `directory`, or (0, []).

    Raises:
        ValueError: its `state.json` is damaged or names a file that is missing.
    """
    state = _state(directory)
    return (int(state["epochs_done"]), list(state["history"])) if state else (0, [])


def recorded_settings(directory: str | os.PathLike) -> dict:
    """The settings (`FINETUNE_SETTINGS`) the run in `directory` recorded; {} for none."""
    return dict((_state(directory) or {}).get("settings") or {})


def changed_settings(directory: str | os.PathLike, settings: dict) -> dict[str, tuple]:
    """{name: (given, recorded)} for each of `settings` (names of `FINETUNE_SETTINGS`)
    that differs from what the run in `directory` recorded; a `num_frames` or `size` of
    None is the recorded one (the model's default, resolved when the run began)."""
    recorded = recorded_settings(directory)  # none before runs recorded them
    changed = {}
    for name, given in settings.items():
        if name not in recorded or (given is None and name in ("num_frames", "size")):
            continue
        if name == "size":
            given = [given, given] if isinstance(given, int) else list(given)
        if given != recorded[name]:
            changed[name] = (given, recorded[name])
    return changed


def load_checkpoint(directory: str | os.PathLike) -> VideoPrismContrastive:
    """The model of the last whole epoch of the run in `directory` (optimizer included).

    Raises:
        ValueError: `directory` holds no finished epoch, or its state is damaged or
            names a file that is missing.
    """
    state = _state(directory)
    if state is None:
        raise ValueError(f"{directory} holds no finished epoch to resume from (no {STATE_FILE})")
    model = keras.models.load_model(Path(directory) / state["checkpoint"])
    if "adapters" in state:  # out of the merged kernels again, as they trained
        lora.restore(model.backbone, Path(directory) / state["adapters"])
    elif lora.adapted_layers(model.backbone):  # loaded merged, its adapters zeroed
        raise ValueError(f"{directory} was checkpointed before adapters were kept beside "
                         "each checkpoint, so it cannot resume as it trained: move it aside "
                         "and start a new run")  # fmt: skip
    return model


def with_remat(backbone: VideoPrismBackbone) -> VideoPrismBackbone:
    """A copy of `backbone` with `remat=True` and the same weights: activations are
    recomputed in the backward pass, which trains in less memory."""
    rebuilt = type(backbone).from_config({**backbone.get_config(), "remat": True})
    rebuilt.set_weights(backbone.get_weights())
    return rebuilt


def run(backbone: VideoPrismBackbone | None, tokenizer: VideoPrismTokenizer,
        train_pairs: Sequence[Pair], output: str | os.PathLike, *,
        eval_pairs: Sequence[Pair] | None = None, epochs: int = 1,
        learning_rate: float = FINETUNE_LEARNING_RATE, batch_size: int = 4,
        num_frames: int | None = None, size: int | None = None, lora_rank: int | None = None,
        freeze: str | None = None, remat: bool = False, resume: bool = False, verbose: int = 1,
        workers: int = 2, seed: int = 0) -> dict:  # fmt: skip
    """`videoprism finetune`: trains, checkpoints each epoch into `output`, and reports
    recall on `eval_pairs` before and after.

    Args:
        backbone: `VideoPrismBackbone` or None. The LvT model to train; None when
            resuming (the checkpoint holds it).
        tokenizer: `VideoPrismTokenizer`. Tokenizes the captions.
        train_pairs: sequence of (path, caption, start, end). What `read_pairs` returns.
        output: str or path. The run's folder: checkpoints, `state.json`, `summary.json`.
        eval_pairs: sequence of pairs or None. Held out: retrieval before and after, as
            `eval retrieval` measures (`evaluate_recall`). Defaults to `None`.
        epochs: int. The epoch to train up to (counting a resumed run's). Defaults to `1`.
        learning_rate: float. Adam's learning rate. Defaults to
            `constants.FINETUNE_LEARNING_RATE`.
        batch_size: int. Pairs per step (and the negatives of each). Defaults to `4`.
        num_frames: int or None. Frames per clip. Defaults to the backbone's (resuming: the run's).
        size: int or None. Frame side. Defaults to the backbone's (resuming: the run's).
        lora_rank: int or None. Train LoRA adapters of this rank only. Defaults to `None`.
        freeze: None, "video" or "text". Keep that tower fixed. Defaults to `None`.
        remat: bool. Recompute activations in the backward pass (`with_remat`): less
            memory. Defaults to `False`.
        resume: bool. Continue the run in `output` from its last checkpoint, with the
            settings it recorded (`FINETUNE_SETTINGS`: another value raises).
            Defaults to `False`.
        verbose: int. 0: silent; 1: progress bars (the evaluation's, and one over
            every training step with its time left); 2: Keras' line per epoch.
            Defaults to `1`.
        workers: int. Threads decoding the next batches. Defaults to `2`.
        seed: int. The shuffle's seed. Defaults to `0`.

    Returns:
        dict: output, epochs, resumed_at, losses (one per epoch), recall_before and
        recall_after (`retrieval_recall`'s; None without `eval_pairs`), as `summary.json`.

    Raises:
        ValueError: `resume` and `output` holds no run to resume, or one whose state is
            damaged or names a missing file, or that recorded other settings.
    """
    output = Path(output)
    settings = {"lora_rank": lora_rank, "freeze": freeze, "learning_rate": float(learning_rate),
                "batch_size": int(batch_size), "num_frames": num_frames, "size": size,
                "remat": bool(remat)}  # fmt: skip
    done, history = resume_state(output) if resume else (0, [])
    if resume:
        if not done:
            raise ValueError(f"resume=True, but {output} holds no run to resume (no {STATE_FILE})")
        recorded = recorded_settings(output)
        num_frames, size = num_frames or recorded.get("num_frames"), size or recorded.get("size")
        settings.update(num_frames=num_frames, size=size)
        changed = changed_settings(output, settings)
        if changed:
            raise ValueError("resume=True with other settings than the run's: " + ", ".join(
                f"{k}={g!r} (the run's: {r!r})" for k, (g, r) in changed.items()))  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    if done:  # `backbone` may be None: the checkpoint holds it
        model = load_checkpoint(output)
    else:
        backbone = with_remat(backbone) if remat else backbone
        model = VideoPrismContrastive(backbone, freeze=freeze, lora_rank=lora_rank)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    sampling = Sampling.for_model(model.backbone, num_frames, size)
    num_frames, size = sampling.num_frames, sampling.size
    settings.update(num_frames=int(num_frames), size=[int(s) for s in size])
    shown = verbose == 1
    evaluate = (lambda: evaluate_recall(model, eval_pairs, tokenizer, batch_size, num_frames,
                                        size, progress=shown)) if eval_pairs else None  # fmt: skip
    before = evaluate() if evaluate and not done else None
    data = PairDataset(train_pairs, tokenizer, batch_size, num_frames, size, seed=seed + done,
                       workers=workers)  # fmt: skip
    if done < epochs:
        # verbose=1: one bar over every step left, not Keras' bar per epoch (its ETA is
        # the epoch's); 2: Keras' line per epoch.
        from .progress import step_bar

        bar = [step_bar((epochs - done) * len(data))] if shown else []
        model.fit(data, epochs=epochs, initial_epoch=done, verbose=0 if bar else verbose,
                  callbacks=[_EpochCheckpoint(output, history, settings), *bar])  # fmt: skip
    after = evaluate() if evaluate else None
    summary = {"output": str(output), "epochs": epochs, "resumed_at": done,
               "losses": [h.get("loss") for h in history], "recall_before": before,
               "recall_after": after}  # fmt: skip
    (output / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
