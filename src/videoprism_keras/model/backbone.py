"""`VideoPrismBackbone`: the whole model, video-only or video + text (LvT).

pixel_values (B, T, H, W, C) in [0, 1]
  └─ FactorizedVideoEncoder ─→ spatiotemporal features (B, T, N, D)   video-only output
       └─ auxiliary encoder (global attention over T·N tokens)        LvT only
            └─ AttentionPooler ─→ vision_embeddings (B, D), L2-normalised
token_ids, padding_mask (B, L)
  └─ TextEncoder ─→ text_embeddings (B, D), L2-normalised             LvT only
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from .. import saving
from ..constants import DEFAULT_SOFT_CAP, LORA_TARGETS
from ..deprecation import renamed_arguments
from ..presets import PRESETS
from . import bfloat16, layout, lora, quantization
from .inputs import (
    check_pixel_values,
    check_token_ids,
    frame_shape,
    is_concrete,
    standardize_data_format,
)
from .pooler import AttentionPooler
from .text_encoder import TextEncoder
from .transformer import TransformerStack
from .video_encoder import FactorizedVideoEncoder


def l2_normalize(x: Any, epsilon: float = 1e-12) -> Any:
    """`x / sqrt(sum(x²) + eps)` over the last axis, in float32 like the official code."""
    x32 = ops.cast(x, "float32")
    norm = ops.sqrt(ops.sum(ops.square(x32), axis=-1, keepdims=True) + epsilon)
    return ops.cast(x32 / norm, x.dtype)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class VideoPrismBackbone(keras.Model):
    """VideoPrism video encoder, optionally with its aligned text encoder.

    The constructor takes keras_hub's `VideoPrismBackbone` arguments, so that configs
    and presets pass between the two libraries.

    Args:
        num_frames: int. Frames the temporal position table was trained with. Any
            other count works at call time (the table is interpolated).
        patch_size: int. Side of the square patches (18 in the releases).
        hidden_dim: int. Width of the transformers (the embedding size).
        intermediate_dim: int. Width of the vision MLPs' hidden layers.
        num_heads: int. Attention heads of every transformer.
        num_spatial_layers: int. Depth of the spatial video stack.
        num_temporal_layers: int. Depth of the temporal video stack.
        num_auxiliary_layers: int. Depth of the global video stack before pooling
            (LvT). A video-only model has no such stack and ignores it, as keras_hub
            does (its test configs give video-only models 1).
        vocabulary_size: int. Rows of the text token table. Defaults to `0`.
        num_text_layers: int. Depth of the text tower; more than 0 makes the model
            multimodal (LvT). Defaults to `0`.
        dropout_rate: float. Dropout on residual branches and MLP activations
            (training only). Defaults to `0.0`.
        attention_dropout_rate: float. Dropout on attention probabilities (training
            only). Defaults to `0.0`.
        attention_logit_soft_cap: float or None. `cap · tanh(logits / cap)` on
            attention logits; None disables it. The released models use 50
            (`constants.DEFAULT_SOFT_CAP`). Defaults to `None`.
        layer_norm_epsilon: float. Epsilon of every LayerNorm. Defaults to `1e-6`.
        image_shape: tuple of three ints. The frame shape the spatial position table
            was trained with, in the order of `data_format`: (H, W, C), or (C, H, W)
            for channels_first (as keras_hub reads it). Defaults to `(288, 288, 3)`.
        data_format: str or None. "channels_last" (B, T, H, W, C) or
            "channels_first" (B, T, C, H, W). Defaults to `None`:
            `keras.config.image_data_format()`.
        dtype: a dtype, a `keras.DTypePolicy` or a `DTypePolicyMap`. float32 gives
            the official numerics; "bfloat16" or "mixed_bfloat16" is an approximate
            mode (its error and speed per CPU and backend: benchmarks/README.md).
            Softmax and normalisations are computed in float32 regardless.
            Defaults to `None` (Keras' default, float32).
        remat: bool. Rematerialise every transformer block in training (gradient
            checkpointing): less activation memory for one more forward pass.
            Defaults to `False`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Calling the model: a video-only model maps `pixel_values` to
    (B, T, N, hidden_dim) features. A multimodal model maps
    `{"pixel_values", "token_ids", "padding_mask"}` to
    `{"vision_embeddings", "text_embeddings"}`, both (B, D) and L2-normalised.
    `encode_video` and `encode_text` give every intermediate output and run one
    tower alone.
    """

    # Built-in presets: name → description, params, num_frames, size, multimodal, source,
    # license (and `resolution`, the old name of `size`, until the next release).
    presets = PRESETS

    def __init__(
        self,
        num_frames: int,
        patch_size: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_heads: int,
        num_spatial_layers: int,
        num_temporal_layers: int,
        num_auxiliary_layers: int,
        vocabulary_size: int = 0,
        num_text_layers: int = 0,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        attention_logit_soft_cap: float | None = None,
        layer_norm_epsilon: float = 1e-6,
        image_shape: Sequence[int] = (288, 288, 3),
        data_format: str | None = None,
        dtype: Any = None,
        remat: bool = False,
        **kwargs: Any,
    ):
        super().__init__(dtype=dtype, **kwargs)
        bfloat16.warn_if_slow(self.dtype_policy.compute_dtype)
        data_format = standardize_data_format(data_format)
        image_shape = tuple(int(s) for s in image_shape)
        _check_config(
            patch_size, hidden_dim, num_heads, num_auxiliary_layers, vocabulary_size,
            num_text_layers, image_shape, data_format,
        )  # fmt: skip
        self._config = dict(
            num_frames=num_frames,
            patch_size=patch_size,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            num_spatial_layers=num_spatial_layers,
            num_temporal_layers=num_temporal_layers,
            num_auxiliary_layers=num_auxiliary_layers,
            vocabulary_size=vocabulary_size,
            num_text_layers=num_text_layers,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            attention_logit_soft_cap=attention_logit_soft_cap,
            layer_norm_epsilon=layer_norm_epsilon,
            image_shape=image_shape,
            data_format=data_format,
        )
        for key, value in self._config.items():
            setattr(self, key, value)
        self.frame_shape = frame_shape(image_shape, data_format)  # (H, W, C) in any layout
        # The policy object itself, so that a DTypePolicyMap reaches every layer (each
        # looks its own path up in it).
        policy = self.dtype_policy
        shared = dict(
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=policy,
            remat=remat,
        )
        self.remat = bool(remat)
        self.video_encoder = FactorizedVideoEncoder(
            num_frames=num_frames,
            patch_grid=(self.frame_shape[0] // patch_size, self.frame_shape[1] // patch_size),
            patch_size=patch_size,
            channels=self.frame_shape[2],
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            num_spatial_layers=num_spatial_layers,
            num_temporal_layers=num_temporal_layers,
            name="video_encoder",
            **shared,
        )
        self.video_encoder.build()
        self.auxiliary_encoder = self.video_pooler = self.text_encoder = None
        if self.is_multimodal:
            if num_auxiliary_layers:
                self.auxiliary_encoder = TransformerStack(
                    num_auxiliary_layers,
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    activation="gelu",
                    name="auxiliary_encoder",
                    **shared,
                )
                self.auxiliary_encoder.build((None, None, hidden_dim))
            # The LvT pooler's heads are 4× wider than the encoders' (head_dim = 4·D / heads).
            self.video_pooler = AttentionPooler(
                num_heads,
                4 * hidden_dim // num_heads,
                layer_norm_epsilon,
                dtype=policy,
                name="video_pooler",
            )
            self.video_pooler.build((None, None, hidden_dim))
            self.text_encoder = TextEncoder(
                vocabulary_size, num_text_layers, hidden_dim, num_heads, name="text_encoder",
                **shared,
            )  # fmt: skip
            self.text_encoder.build()
        self.built = True

    @classmethod
    def from_preset(
        cls, preset: str | os.PathLike, load_weights: bool = True, **overrides: Any
    ) -> VideoPrismBackbone:
        """A pretrained backbone.

        Args:
            preset: str or path. A built-in name (see `VideoPrismBackbone.presets`;
                downloads Google's official checkpoint once and caches it
                converted), `"hf://owner/repo"` or `"modelscope://owner/name"` (an
                official `.npz` or a saved preset; `.../file.npz` picks a file),
                `"kaggle://keras/videoprism/keras/<variant>"` (keras_hub's presets), a
                local preset directory (ours or keras_hub's) or a local official `.npz`.
            load_weights: bool. False gives the architecture with random weights
                and, for built-in names, downloads nothing. Defaults to `True`.
            **overrides: other backbone arguments. `num_frames` and `image_shape`
                resize the learned position tables; the large releases were
                trained on 8 frames, e.g. `num_frames=16`.
        """
        return saving.load_backbone(cls, preset, load_weights=load_weights, **overrides)

    @classmethod
    def from_flax_checkpoint(
        cls,
        path_or_mapping: str | os.PathLike | Mapping,
        attention_logit_soft_cap: float | None = DEFAULT_SOFT_CAP,
        **overrides: Any,
    ) -> VideoPrismBackbone:
        """A backbone from an official checkpoint: see `videoprism_keras.load_flax_checkpoint`."""
        return saving.load_official(cls, path_or_mapping, attention_logit_soft_cap, **overrides)

    def save(self, filepath: str | os.PathLike, overwrite: bool = True, **kwargs: Any) -> None:
        """`keras.Model.save`, to a `.keras` file (the only format that loads back).

        Args:
            filepath: str or path. A file ending in `.keras`.
            overwrite: bool. Replace an existing file. Defaults to `True`.
            **kwargs: `keras.Model.save` arguments.
        """
        saving.check_keras_file(filepath)
        super().save(filepath, overwrite=overwrite, **kwargs)

    def save_to_preset(self, preset_dir: str | os.PathLike) -> None:
        """Writes config, weights, metadata (and the tokenizer it came with) to a directory.

        Args:
            preset_dir: str or path. The directory, made if missing; keras_hub's layout.
        """
        saving.save_backbone(self, preset_dir)

    @property
    def is_multimodal(self) -> bool:
        """Whether the model has a text tower (`num_text_layers > 0`, the LvT models)."""
        return self.num_text_layers > 0

    @property
    def token_embedding(self) -> keras.layers.Embedding | None:
        """The text tower's token table (a `keras.layers.Embedding`), None without one.

        keras_hub's `Backbone` convention; its own VideoPrism returns None even for LvT.
        """
        return None if self.text_encoder is None else self.text_encoder.token_embedding

    # ------------------------------------------------------------ fine-tuning
    def enable_lora(
        self,
        rank: int,
        target_names: Sequence[str] | None = None,
        lora_alpha: float | None = None,
    ) -> None:
        """Low-rank adapters on the attention, MLP and pooler projections of every encoder;
        every other weight is frozen. Outputs are unchanged until the adapters train
        (their B matrices start at zero). See `model/lora.py`.

        Args:
            rank: int. Rank of the adapters (a positive integer).
            target_names: sequence of str or None. The names of the layers to adapt.
                Defaults to `None`: `constants.LORA_TARGETS`.
            lora_alpha: float or None. The adapters' scale is `lora_alpha / rank`.
                Defaults to `None` (Keras' default: `rank`, a scale of 1).
        """
        lora.enable(self, rank, target_names, lora_alpha)

    def get_lora_target_names(self) -> list[str]:
        """The layer names `enable_lora` adapts by default (keras_hub's convention)."""
        return list(LORA_TARGETS)

    def save_lora_weights(self, filepath: str | os.PathLike) -> None:
        """Writes the adapters alone to `filepath`, a file ending in `.lora.h5`."""
        lora.save(self, filepath)

    def load_lora_weights(self, filepath: str | os.PathLike) -> None:
        """Reads adapters saved by `save_lora_weights` (enabling LoRA first if needed)."""
        lora.load(self, filepath)

    def merge_lora_weights(self) -> None:
        """Folds the adapters into the kernels and removes them, for inference."""
        lora.merge(self)

    def get_layout_map(
        self,
        device_mesh: keras.distribution.DeviceMesh,
        model_parallel_dim_name: str = "model",
        data_parallel_dim_name: str = "batch",
    ) -> keras.distribution.LayoutMap:
        """A `keras.distribution.LayoutMap` for `ModelParallel` (keras_hub's convention):
        see `model/layout.py`.

        Args:
            device_mesh: `keras.distribution.DeviceMesh`. The devices.
            model_parallel_dim_name: str. The mesh axis the weights are split along.
                Defaults to `"model"`.
            data_parallel_dim_name: str. The mesh axis of the batch. Defaults to
                `"batch"`.
        """
        return layout.layout_map(device_mesh, model_parallel_dim_name, data_parallel_dim_name)

    def quantize(
        self,
        mode: str | None = None,
        config: Any = None,
        filters: quantization.Filters | None = None,
        **kwargs: Any,
    ) -> None:
        """Quantizes the dense projections (attention, MLP, patch, poolers) and the token
        embedding, the Keras way.

        The model then computes with the quantized weights; `get_config` records the
        quantized layers (a `DTypePolicyMap`), so `save`, `save_to_preset` and loading
        keep them quantized. Error and speed per mode: benchmarks/README.md.

        Args:
            mode: str or None. "int8", "int4" or "float8". Defaults to `None`: the
                mode of `config`.
            config: a `keras.quantizers` config, or None. Defaults to `None`.
            filters: a regex searched in layer names, a list of them, a callable on
                a layer, or None for every quantizable layer (`keras.Model.quantize`'s
                argument). Defaults to `None`.
            **kwargs: `keras.Model.quantize` arguments.
        """
        quantization.quantize(self, super().quantize, mode, config, filters, **kwargs)

    # ----------------------------------------------------------------- video
    def encode_video(
        self,
        pixel_values: Any,
        frame_padding_mask: Any = None,
        normalize: bool = True,
        training: bool = False,
    ) -> dict[str, Any]:
        """Runs the video tower alone.

        Args:
            pixel_values: tensor, numpy array or nested lists. (B, T, H, W, C) floats
                in [0, 1], or uint8 in 0–255 (scaled by 1/255) ((B, T, C, H, W) for
                channels_first). Any T ≥ 1; any H, W divisible by `patch_size`.
                numpy values outside [0, 1] or not finite are refused
                (`model/inputs.py`).
            frame_padding_mask: tensor, array or None. (B, T), 1 = real frame, 0 =
                padding. Padded frames are hidden from real ones in every attention
                (temporal, auxiliary, pooling), so their content never matters.
                Defaults to `None` (every frame real).
            normalize: bool. L2-normalise the embeddings (multimodal models).
                Defaults to `True`.
            training: bool. Dropout on (training mode). Defaults to `False`.

        Returns:
            A dict with `spatial_features` and `spatiotemporal_features`
            (B, T, N, D) and, for multimodal models, `vision_embeddings` (B, D) and
            `frame_embeddings` (B, T, D) (the pooler applied to each frame's tokens).
        """
        pixels = self._check_pixels(pixel_values)
        if frame_padding_mask is not None:
            frame_padding_mask = self._check_frame_mask(frame_padding_mask, pixels)
        out = self.video_encoder(pixels, frame_mask=frame_padding_mask, training=training)
        if not self.is_multimodal:
            return out
        features = out["spatiotemporal_features"]  # (B, T, N, D)
        _, frames, patches, dim = features.shape
        # -1, not `batch`: an exported graph keeps its batch free (see `kernels.linear`).
        tokens = ops.reshape(features, (-1, frames * patches, dim))
        token_mask = attention_mask = None
        if frame_padding_mask is not None:
            token_mask = ops.repeat(ops.cast(frame_padding_mask, "bool"), patches, axis=1)
            attention_mask = token_mask[:, None, None, :]
        if self.auxiliary_encoder is not None:
            tokens = self.auxiliary_encoder(
                tokens, attention_mask=attention_mask, training=training
            )
        video = self.video_pooler(tokens, token_mask=token_mask)
        per_frame = self.video_pooler(ops.reshape(tokens, (-1, patches, dim)))
        per_frame = ops.reshape(per_frame, (-1, frames, dim))
        if normalize:
            video, per_frame = l2_normalize(video), l2_normalize(per_frame)
        return {**out, "vision_embeddings": video, "frame_embeddings": per_frame}

    # ------------------------------------------------------------------ text
    def encode_text(
        self, token_ids: Any, padding_mask: Any, normalize: bool = True, training: bool = False
    ) -> Any:
        """Runs the text tower alone: (B, L) token ids → (B, D) text embeddings.

        Args:
            token_ids: tensor, numpy array or nested lists. (B, L) ids of the model's
                tokenizer, in [0, vocabulary_size).
            padding_mask: tensor, numpy array or nested lists. (B, L), 1 = real
                token, 0 = padding.
            normalize: bool. L2-normalise the embeddings. Defaults to `True`.
            training: bool. Dropout on (training mode). Defaults to `False`.
        """
        if not self.is_multimodal:
            raise ValueError("encode_text needs a multimodal model (num_text_layers > 0)")
        if padding_mask is None:
            raise ValueError("token_ids need a padding_mask (B, L) with 1 = real token")
        if is_concrete(token_ids):
            token_ids = np.asarray(token_ids)
            check_token_ids(token_ids, self.vocabulary_size)
        token_ids, padding_mask = (
            x if hasattr(x, "shape") else ops.convert_to_tensor(x, "int32")  # nested lists
            for x in (token_ids, padding_mask)
        )
        if len(token_ids.shape) != 2 or tuple(token_ids.shape) != tuple(padding_mask.shape):
            raise ValueError(
                "token_ids and padding_mask must both be (batch, length); got "
                f"{tuple(token_ids.shape)} and {tuple(padding_mask.shape)}"
            )
        text = self.text_encoder(token_ids, padding_mask, training=training)
        return l2_normalize(text) if normalize else text

    # ------------------------------------------------------------ Keras call
    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """Keras' forward pass: see "Calling the model" in the class docstring."""
        if not self.is_multimodal:
            pixels = inputs["pixel_values"] if isinstance(inputs, dict) else inputs
            return self.encode_video(pixels, training=training)["spatiotemporal_features"]
        if not isinstance(inputs, dict):
            raise ValueError(
                "a multimodal VideoPrismBackbone takes a dict with 'pixel_values' and/or "
                f"'token_ids' + 'padding_mask'; got {type(inputs).__name__}"
            )
        unknown = set(inputs) - {"pixel_values", "token_ids", "padding_mask"}
        if unknown:
            raise ValueError(f"unexpected inputs {sorted(unknown)}")
        outputs = {}
        if "pixel_values" in inputs:
            video = self.encode_video(inputs["pixel_values"], training=training)
            outputs["vision_embeddings"] = video["vision_embeddings"]
        if "token_ids" in inputs:
            outputs["text_embeddings"] = self.encode_text(
                inputs["token_ids"], inputs.get("padding_mask"), training=training
            )
        if not outputs:
            raise ValueError("inputs hold neither 'pixel_values' nor 'token_ids'")
        # Sorted keys: exporters flatten the dict in sorted (JAX, TensorFlow) or insertion
        # (PyTorch) order, and then all agree on the order of the outputs.
        return dict(sorted(outputs.items()))

    @renamed_arguments(resolution="size")
    def export(
        self,
        filepath: str | os.PathLike,
        format: str = "tf_saved_model",
        verbose: bool | None = None,
        input_signature: Any = None,
        num_frames: int | None = None,
        size: int | Sequence[int] | None = None,
        text_length: int = 64,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> str | os.PathLike:
        """Keras' `export`, with the inputs fixed at one clip shape and text length.

        See `videoprism_keras.export` for inputs, outputs and what each backend exports.

        Args:
            filepath: str or path. Where the artefact goes (`.onnx` for ONNX,
                `.tflite` for LiteRT, a directory for a SavedModel).
            format: str. "tf_saved_model", "onnx" or "litert". Defaults to
                `"tf_saved_model"`.
            verbose: bool or None. Keras' exporter's messages. Defaults to `None`.
            input_signature: Keras' own argument, instead of the shapes below.
                Defaults to `None`.
            num_frames: int or None. Frames of the clips the artefact takes.
                Defaults to `None`: the model's `num_frames`.
            size: int, (height, width) or None. Frame size of the clips (one int for
                a square). Defaults to `None`: the model's `image_shape`.
                (`resolution` until the next release.)
            text_length: int. Tokens per text (multimodal models). Defaults to `64`.
            batch_size: int or None. A fixed batch, or None for any batch (LiteRT
                from PyTorch fixes it to 1). Defaults to `None`.
            **kwargs: passed to Keras' exporter; for ONNX only `opset_version`.

        Returns:
            `filepath`.
        """
        from .. import export

        return export.export(
            self, filepath, format, num_frames, size, text_length, batch_size, verbose,
            input_signature, **kwargs,
        )  # fmt: skip

    def get_config(self) -> dict:
        config = {**super().get_config(), **self._config}
        config["image_shape"] = list(config["image_shape"])
        config["dtype"] = quantization.dtype_config(self)
        if self.remat:  # only when on: preset files stay readable by keras_hub
            config["remat"] = True
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VideoPrismBackbone:
        config = dict(config)
        if isinstance(config.get("dtype"), dict):  # a serialised policy or policy map
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)

    # ------------------------------------------------------------ checks
    def _check_pixels(self, pixels: Any) -> Any:
        if is_concrete(pixels):  # numpy or nested lists: values checked (model/inputs.py)
            pixels = check_pixel_values(pixels)
        elif keras.backend.standardize_dtype(pixels.dtype) == "uint8":
            pixels = ops.cast(pixels, "float32") / 255.0  # as check_pixel_values scales it
        shape = tuple(pixels.shape)
        channels_first = self.data_format == "channels_first"
        layout = "(B, T, C, H, W)" if channels_first else "(B, T, H, W, C)"
        if len(shape) != 5:
            raise ValueError(f"pixel_values must be 5-D {layout}; got shape {shape}")
        if channels_first:
            pixels = ops.transpose(pixels, (0, 1, 3, 4, 2))
            shape = tuple(pixels.shape)
        height, width, channels = shape[2:]
        if shape[1] == 0:
            raise ValueError(f"pixel_values has no frames: shape {shape}; T must be at least 1")
        if channels != self.frame_shape[2]:
            raise ValueError(
                f"pixel_values has {channels} channels, the model expects {self.frame_shape[2]} "
                f"(layout {layout}, data_format={self.data_format!r})"
            )
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"pixel_values frames are {height}x{width}; height and width must be "
                f"multiples of patch_size={self.patch_size}"
            )
        return ops.cast(pixels, self.compute_dtype)

    @staticmethod
    def _check_frame_mask(mask: Any, pixels: Any) -> Any:
        if len(mask.shape) != 2 or mask.shape[1] != pixels.shape[1]:
            raise ValueError(
                f"frame_padding_mask must be (batch, frames) = (B, {pixels.shape[1]}); "
                f"got {tuple(mask.shape)}"
            )
        return mask


def _check_config(
    patch_size: int, hidden_dim: int, num_heads: int, num_auxiliary_layers: int,
    vocabulary_size: int, num_text_layers: int, image_shape: tuple, data_format: str,
) -> None:  # fmt: skip
    if hidden_dim % num_heads:
        raise ValueError(f"hidden_dim={hidden_dim} must be divisible by num_heads={num_heads}")
    layout = "(C, H, W)" if data_format == "channels_first" else "(H, W, C)"
    if len(image_shape) == 3:
        height, width, _ = frame_shape(image_shape, data_format)
    if len(image_shape) != 3 or height % patch_size or width % patch_size:
        raise ValueError(
            f"image_shape must be {layout} (data_format={data_format!r}) with H, W multiples "
            f"of patch_size={patch_size}; got {image_shape}"
        )
    if num_text_layers > 0 and vocabulary_size <= 0:
        raise ValueError(
            f"num_text_layers={num_text_layers} needs a text vocabulary: set vocabulary_size > 0"
        )
    if num_auxiliary_layers < 0:
        raise ValueError(
            f"num_auxiliary_layers must be 0 or more. Received: num_auxiliary_layers="
            f"{num_auxiliary_layers}"
        )
