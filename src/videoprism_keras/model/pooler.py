"""Attention pooling: a learned query attends over all tokens to make one embedding.

This is the official `AttenTokenPoolingLayer`. Unlike the encoders' attention it
has no logit cap and scales its query per dimension,
`q · 1.442695041 / sqrt(head_dim) · softplus(per_dim_scale)` (the constant is
1 / softplus(0), so a zero-initialised scale starts at 1 / sqrt(head_dim)).
Its heads may be wider than hidden_dim / num_heads: the LvT pooler uses
head_dim = 4·D / heads, the classifier's D / heads. A LayerNorm closes it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ..deprecation import renamed_arguments, renamed_attribute
from .init import new_weight
from .projection import Projection
from .transformer import LayerNorm, attend, merge_heads, split_heads

R_SOFTPLUS_0 = 1.442695041  # 1 / softplus(0), hard-coded like the official code


@keras.saving.register_keras_serializable(package="videoprism_keras")
class AttentionPooler(keras.layers.Layer):
    """(B, S, D) tokens [+ (B, S) mask, 1 = real] → (B, D) pooled embedding.

    Args:
        num_heads: int. Attention heads.
        head_dim: int. Width of each head (need not be D / num_heads).
        layer_norm_epsilon: float. Epsilon of the closing LayerNorm. Defaults to `1e-6`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    epsilon = renamed_attribute("layer_norm_epsilon")

    @renamed_arguments(epsilon="layer_norm_epsilon")
    def __init__(
        self, num_heads: int, head_dim: int, layer_norm_epsilon: float = 1e-6, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.layer_norm_epsilon = layer_norm_epsilon
        self.norm = LayerNorm(layer_norm_epsilon, dtype=self.dtype_policy, name="norm")

    def build(self, input_shape: tuple) -> None:
        dim, inner = input_shape[-1], self.num_heads * self.head_dim
        policy = self.dtype_policy
        self.query = new_weight(self, "query", (1, dim))
        self.per_dim_scale = new_weight(self, "per_dim_scale", (self.head_dim,), "zeros")
        self.q_proj = Projection(inner, dtype=policy, name="q_proj")
        self.kv_proj = Projection(2 * inner, dtype=policy, name="kv_proj")
        self.out_proj = Projection(dim, dtype=policy, name="out_proj")
        for layer, width in ((self.q_proj, dim), (self.kv_proj, dim), (self.out_proj, inner)):
            layer.build((None, width))
        self.norm.build((None, dim))

    def get_config(self) -> dict:
        config = super().get_config()
        return {**config, "num_heads": self.num_heads, "head_dim": self.head_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon}  # fmt: skip

    def call(self, tokens: Any, token_mask: Any = None) -> Any:
        batch = ops.shape(tokens)[0]
        heads, head_dim = self.num_heads, self.head_dim
        # A tensor, not the variable: on TensorFlow a variable inside Keras' quantized call
        # (a custom gradient) is refused.
        q = self.q_proj(ops.cast(self.query, self.compute_dtype))  # (1, heads·head_dim)
        scale = R_SOFTPLUS_0 / head_dim**0.5 * ops.softplus(self.per_dim_scale)
        q = ops.reshape(q, (1, heads, 1, head_dim)) * scale
        q = ops.broadcast_to(q, (batch, heads, 1, head_dim))
        kv = split_heads(self.kv_proj(tokens), 2, heads)
        mask = None if token_mask is None else ops.cast(token_mask, "bool")[:, None, None, :]
        pooled = merge_heads(attend(q, kv[0], kv[1], mask))  # (B, 1, heads · head_dim)
        pooled = self.norm(self.out_proj(pooled))
        return pooled[:, 0]
