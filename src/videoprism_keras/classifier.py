"""`VideoPrismVideoClassifier`: a frozen VideoPrism backbone, an attention pooler, a linear head.

This is the official `FactorizedVideoClassifier` (the video-classification colab):

    pixels (B, T, H, W, 3) ─ backbone ─→ features (B, T·N, D)
      ─ AttentionPooler (head_dim D / heads) ─→ global embedding (B, D) ─ Dense ─→ logits (B, C)

Only the pooler and the head train by default. Inputs may also be precomputed
backbone features, `{"features": (B, T, N, D)}`, so that training epochs need
not re-run the backbone (see `extract_features`). Fine-tuning goes further:
`lora_rank` trains low-rank adapters in the backbone (`model/lora.py`), and
`freeze_backbone=False` trains all of it; both take pixels. `classifier_training.train`
fits one on labelled video files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from . import saving
from .constants import DEFAULT_SOFT_CAP
from .deprecation import renamed_arguments
from .model import lora, quantization
from .model.backbone import VideoPrismBackbone
from .model.pooler import AttentionPooler
from .model.projection import Projection
from .runtime import sigmoid, softmax


@keras.saving.register_keras_serializable(package="videoprism_keras")
class VideoPrismVideoClassifier(keras.Model):
    """A video classifier on a VideoPrism backbone.

    Args:
        backbone: `VideoPrismBackbone`. Its video tower is used.
        num_classes: int. Number of output classes.
        multi_label: bool. Independent sigmoid classes (binary cross-entropy) instead
            of one softmax over classes; sets `compile`'s default loss and
            `predict_proba`. Defaults to `False`.
        dropout_rate: float. Dropout on the pooled embedding before the head (training
            only). Defaults to `0.0`.
        freeze_backbone: bool. Keep the backbone's weights fixed (the official recipe).
            This sets `backbone.trainable` on the object you pass (False, or True with
            `freeze_backbone=False`): a backbone shared with other models is frozen (or
            unfrozen) for them too. Pass a copy (`VideoPrismBackbone.from_config(
            bb.get_config())` plus `set_weights`) to keep the original as it was.
            Defaults to `True`.
        labels: list of str or None. Class names, one per class; saved with the model,
            so a trained classifier says what it predicts (`predict_labels`).
            Defaults to `None`.
        lora_rank: int or None. Train LoRA adapters of this rank on the backbone's
            attention and MLP projections (`backbone.enable_lora`), the rest of it
            frozen; overrides `freeze_backbone` (the backbone then runs in training
            mode). Defaults to `None`.
        trained_sampling: dict or None. `{"num_frames": int, "size": [height, width]}`:
            how the clips it was trained on were sampled, which `classify --head` samples
            with (`classifier_training.train` sets it). None: unknown (the backbone's).
            Defaults to `None`.
    """

    def __init__(
        self,
        backbone: VideoPrismBackbone,
        num_classes: int,
        multi_label: bool = False,
        dropout_rate: float = 0.0,
        freeze_backbone: bool = True,
        labels: list[str] | None = None,
        lora_rank: int | None = None,
        trained_sampling: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dtype=kwargs.pop("dtype", backbone.dtype_policy), **kwargs)
        if labels is not None:
            if isinstance(labels, str) or len(labels) != num_classes:
                raise ValueError(
                    f"labels must be a list of {num_classes} class names (one per class); "
                    f"Received: labels={labels!r}"
                )
            labels = [str(label) for label in labels]
        self.labels = labels
        self.trained_sampling = trained_sampling
        self.backbone = backbone
        self.lora_rank = lora_rank
        if lora_rank is not None:
            freeze_backbone = False
            if not lora.adapted_layers(backbone):  # a backbone passed with LoRA keeps it
                backbone.enable_lora(int(lora_rank))
        else:
            self.backbone.trainable = not freeze_backbone
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.dropout_rate = dropout_rate
        self.freeze_backbone = freeze_backbone
        dim, heads = backbone.hidden_dim, backbone.num_heads
        self.pooler = AttentionPooler(
            heads, dim // heads, backbone.layer_norm_epsilon, dtype=self.dtype_policy, name="pooler"
        )
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=self.dtype_policy, autocast=False)
        self.head = Projection(num_classes, dtype=self.dtype_policy, name="head")
        self.pooler.build((None, None, dim))
        self.head.build((None, dim))
        self.built = True

    def extract_features(self, pixel_values: Any, frame_padding_mask: Any = None) -> Any:
        """Backbone features (B, T, N, D) to cache and train on with `{"features": ...}`.

        Args:
            pixel_values: (B, T, H, W, 3) array or tensor. Frames in [0, 1], or uint8.
            frame_padding_mask: (B, T) array or None. 1 = real frame. Defaults to `None`.
        """
        out = self.backbone.encode_video(pixel_values, frame_padding_mask, training=False)
        return out["spatiotemporal_features"]

    def embed(self, inputs: Any, training: bool | None = None) -> Any:
        """The pooled global embedding (B, D), before the head; `inputs` as for `call`."""
        features, mask = self._features(inputs, training)
        batch = ops.shape(features)[0]
        _, frames, patches, dim = features.shape
        tokens = ops.reshape(features, (batch, frames * patches, dim))
        token_mask = None if mask is None else ops.repeat(ops.cast(mask, "bool"), patches, axis=1)
        return self.pooler(tokens, token_mask=token_mask)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """pixels, `{"pixel_values"[, "frame_padding_mask"]}` or `{"features"}` → logits (B, C)."""
        return self.head(self.dropout(self.embed(inputs, training), training=training))

    def predict_proba(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        """Class probabilities (B, C): softmax over classes, or per-class sigmoids
        (multi_label). `kwargs` go to `predict`."""
        logits = self.predict(inputs, **kwargs)
        return sigmoid(logits) if self.multi_label else softmax(logits)

    def save(self, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
        """`keras.Model.save`, to a `.keras` file (the only format that loads back)."""
        saving.check_keras_file(filepath)
        super().save(filepath, overwrite=overwrite, **kwargs)

    def predict_labels(
        self, inputs: Any, top_k: int = 5, **kwargs: Any
    ) -> list[list[tuple[str, float]]]:
        """Per input, its `top_k` (label, probability) pairs, most probable first; the
        labels are "class i" without `labels`. `kwargs` go to `predict`."""
        probabilities = np.atleast_2d(self.predict_proba(inputs, **kwargs))
        names = self.labels or [f"class {i}" for i in range(self.num_classes)]
        order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
        return [
            [(names[i], float(p[i])) for i in row]
            for p, row in zip(probabilities, order, strict=True)
        ]

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None,
                **kwargs: Any) -> None:  # fmt: skip
        """Defaults: Adam, cross-entropy on logits (binary when multi_label), accuracy."""
        if loss is None:
            loss = (
                keras.losses.BinaryCrossentropy(from_logits=True)
                if self.multi_label
                else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            )
        if metrics is None:
            metrics = (
                [keras.metrics.BinaryAccuracy(threshold=0.0)] if self.multi_label else ["accuracy"]
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def _features(self, inputs, training):
        if isinstance(inputs, dict):
            mask = inputs.get("frame_padding_mask")
            if "features" in inputs:
                return inputs["features"], mask
            pixels = inputs["pixel_values"]
        else:
            pixels, mask = inputs, None
        # A frozen backbone runs in inference mode (no dropout), like the official recipe.
        backbone_training = training and not self.freeze_backbone
        out = self.backbone.encode_video(pixels, mask, training=backbone_training)
        return out["spatiotemporal_features"], mask

    def quantize(self, mode: str | None = None, config: Any = None, filters: Any = None,
                 **kwargs: Any) -> None:  # fmt: skip
        """Quantizes the backbone's projections (see `VideoPrismBackbone.quantize`), the
        pooler's and the head: `mode` "int8", "int4" or "float8"."""
        quantization.quantize(self, super().quantize, mode, config, filters, **kwargs)

    @renamed_arguments(resolution="size")
    def export(self, filepath: str | os.PathLike, format: str = "tf_saved_model",
               verbose: bool | None = None, input_signature: Any = None,
               num_frames: int | None = None, size: int | Sequence[int] | None = None,
               batch_size: int | None = None, **kwargs: Any) -> Any:  # fmt: skip
        """Keras' `export` of `pixel_values` → logits at a fixed clip shape; see
        `VideoPrismBackbone.export`."""
        from . import export

        return export.export(self, filepath, format, num_frames, size, 64, batch_size,
                             verbose, input_signature, **kwargs)  # fmt: skip

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "dtype": quantization.dtype_config(self),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "multi_label": self.multi_label,
            "dropout_rate": self.dropout_rate,
            "freeze_backbone": self.freeze_backbone,
            "labels": self.labels,
            "lora_rank": self.lora_rank,
            "trained_sampling": self.trained_sampling,
        }

    @classmethod
    def from_config(cls, config: dict) -> VideoPrismVideoClassifier:
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if isinstance(config.get("dtype"), dict):  # a serialised policy or policy map
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)

    @classmethod
    def from_flax_checkpoint(
        cls,
        path_or_mapping: str | os.PathLike | dict,
        attention_logit_soft_cap: float = DEFAULT_SOFT_CAP,
        **kwargs: Any,
    ) -> VideoPrismVideoClassifier:
        """The official `FactorizedVideoClassifier` checkpoint (`encoder/`, `atten_pooler/`,
        `projection/`), with the whole configuration read off the tensor shapes.

        Args:
            path_or_mapping: str, path or mapping. The `.npz` file, or its arrays by name.
            attention_logit_soft_cap: float. The cap, which the file does not store.
                Defaults to `constants.DEFAULT_SOFT_CAP`.
        """
        return saving.load_official_classifier(
            cls, VideoPrismBackbone, path_or_mapping, attention_logit_soft_cap, **kwargs
        )
