"""The factorized video encoder (ViViT model-2): pixels → patches → space → time.

    pixels            (B, T, H, W, C)
    patch tokens      (B·T, N, D)      N = (H/p)·(W/p), + spatial positions
    spatial encoder   (B·T, N, D)      attention inside each frame, then LayerNorm
    temporal encoder  (B·N, T, D)      attention across frames per patch, then LayerNorm
    output            (B, T, N, D)

Position tables are resized when the frame count or the patch grid differs
from the training one, so any T and any H, W divisible by p work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from ..deprecation import renamed_arguments
from .embeddings import PositionTable, to_patches
from .projection import Projection
from .transformer import LayerNorm, TransformerStack


@keras.saving.register_keras_serializable(package="videoprism_keras")
class FactorizedVideoEncoder(keras.layers.Layer):
    """(B, T, H, W, C) pixels [+ (B, T) frame mask] → spatial and spatiotemporal features.

    Args:
        num_frames: int. Frames the temporal position table is learned for.
        patch_grid: sequence of two ints. (rows, columns) of patches the spatial
            position table is learned for.
        patch_size: int. Side of the square patches, in pixels.
        channels: int. Colour channels of a frame.
        hidden_dim: int. Width D of the tokens.
        intermediate_dim: int. Width of the MLPs' hidden layers.
        num_heads: int. Attention heads.
        num_spatial_layers: int. Blocks of the spatial stack.
        num_temporal_layers: int. Blocks of the temporal stack.
        attention_logit_soft_cap: float or None. `cap · tanh(logits / cap)` on the
            attention logits; None disables it. Defaults to `None`.
        dropout_rate: float. Residual and MLP dropout (training only). Defaults to `0.0`.
        attention_dropout_rate: float. Dropout on the attention probabilities
            (training only). Defaults to `0.0`.
        layer_norm_epsilon: float. Epsilon of every LayerNorm. Defaults to `1e-6`.
        remat: bool. Rematerialise each block in training. Defaults to `False`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    @renamed_arguments(soft_cap="attention_logit_soft_cap", epsilon="layer_norm_epsilon")
    def __init__(
        self,
        num_frames: int,
        patch_grid: Sequence[int],
        patch_size: int,
        channels: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_heads: int,
        num_spatial_layers: int,
        num_temporal_layers: int,
        attention_logit_soft_cap: float | None = None,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        remat: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            num_frames=num_frames,
            patch_grid=tuple(patch_grid),
            patch_size=patch_size,
            channels=channels,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            num_spatial_layers=num_spatial_layers,
            num_temporal_layers=num_temporal_layers,
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            remat=remat,
        )
        self.patch_size = patch_size
        policy = self.dtype_policy
        block = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            activation="gelu",
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=policy,
            remat=remat,
        )
        self.patch_proj = Projection(hidden_dim, dtype=policy, name="patch_proj")
        self.spatial_positions = PositionTable(
            patch_grid, hidden_dim, dtype=policy, name="spatial_positions"
        )
        self.spatial_encoder = TransformerStack(num_spatial_layers, **block, name="spatial_encoder")
        self.spatial_norm = LayerNorm(layer_norm_epsilon, dtype=policy, name="spatial_norm")
        self.temporal_positions = PositionTable(
            (num_frames,), hidden_dim, dtype=policy, name="temporal_positions"
        )
        self.temporal_encoder = TransformerStack(
            num_temporal_layers, **block, name="temporal_encoder"
        )
        self.temporal_norm = LayerNorm(layer_norm_epsilon, dtype=policy, name="temporal_norm")

    def build(self, input_shape: tuple | None = None) -> None:
        """Every weight; the input shape does not matter (any T, H, W work)."""
        c = self._config
        patch_dim = c["patch_size"] ** 2 * c["channels"]
        self.patch_proj.build((None, patch_dim))
        for layer in (self.spatial_positions, self.temporal_positions):
            layer.build()
        for layer in (self.spatial_encoder, self.temporal_encoder):
            layer.build((None, None, c["hidden_dim"]))
        for layer in (self.spatial_norm, self.temporal_norm):
            layer.build((None, c["hidden_dim"]))

    def get_config(self) -> dict:
        config = {**super().get_config(), **self._config}
        config["patch_grid"] = list(config["patch_grid"])
        return config

    def call(
        self, pixels: Any, frame_mask: Any = None, training: bool | None = None
    ) -> dict[str, Any]:
        """pixels (B, T, H, W, C), frame_mask (B, T) 1 = real → dict of (B, T, N, D)."""
        _, frames, height, width, channels = pixels.shape
        grid = (height // self.patch_size, width // self.patch_size)
        num_patches, dim = grid[0] * grid[1], self.patch_proj.units

        # Pixels → patch tokens: (B·T, N, p·p·C) → (B·T, N, D).
        x = to_patches(ops.reshape(pixels, (-1, height, width, channels)), self.patch_size)
        x = self.patch_proj(x)
        x = x + self.spatial_positions.resized(grid)

        # Spatial encoder, every frame on its own. A padded frame cannot reach a real
        # one here, so no mask is needed in this stage.
        x = self.spatial_norm(self.spatial_encoder(x, training=training))
        # -1, not `batch`: an exported graph keeps its batch free (see `kernels.linear`).
        spatial = ops.reshape(x, (-1, frames, num_patches, dim))

        # Temporal encoder, every patch position on its own: (B·N, T, D).
        x = ops.reshape(ops.transpose(spatial, (0, 2, 1, 3)), (-1, frames, dim))
        x = x + self.temporal_positions.resized((frames,))
        mask = None
        if frame_mask is not None:  # padded frames are hidden from the real ones
            mask = ops.repeat(ops.cast(frame_mask, "bool"), num_patches, axis=0)
            mask = mask[:, None, None, :]  # (B·N, 1, 1, T)
        x = self.temporal_norm(self.temporal_encoder(x, attention_mask=mask, training=training))
        x = ops.transpose(ops.reshape(x, (-1, num_patches, frames, dim)), (0, 2, 1, 3))
        return {"spatial_features": spatial, "spatiotemporal_features": x}
