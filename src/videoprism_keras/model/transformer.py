"""The transformer pieces every VideoPrism encoder is made of.

All four stacks of the model (spatial, temporal, auxiliary, text) are the same
pre-LayerNorm transformer: `x + Attn(LN(x))`, then `x + MLP(LN(x))`. They differ
only in the activation (exact GELU for vision, ReLU for text) and the mask
(padding, causal). Numerics follow the official Flax code: attention logits are
soft-capped with `cap * tanh(logits / cap)`, softmax and LayerNorm statistics are
computed in float32 whatever the compute dtype. Only Keras ops here; the dense
projections are `Projection` layers (see projection.py for why).

Dtype policies are handed down as the policy objects themselves, so that a
`DTypePolicyMap` reaches every layer, which then looks its own path up in it.

The layers take keras_hub's names, as the backbone does: `layer_norm_epsilon` and
`attention_logit_soft_cap` (`epsilon` and `soft_cap` until the next release).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from ..deprecation import renamed_arguments, renamed_attribute
from . import kernels
from .init import new_weight
from .projection import Projection

# The official code writes masked logits as -0.7 * float32.max (not -inf), so a
# row whose keys are all masked gets a uniform softmax instead of NaN.
MASKED_LOGIT = -0.7 * float(np.finfo(np.float32).max)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class LayerNorm(keras.layers.Layer):
    """LayerNorm with float32 statistics: `(x - mean) / sqrt(var + eps) * gamma + beta`.

    The official checkpoints store `gamma - 1`; the converter adds the 1 back.

    Args:
        layer_norm_epsilon: float. Added to the variance. Defaults to `1e-6`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    epsilon = renamed_attribute("layer_norm_epsilon")

    @renamed_arguments(epsilon="layer_norm_epsilon")
    def __init__(self, layer_norm_epsilon: float = 1e-6, **kwargs: Any):
        super().__init__(**kwargs)
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape: tuple) -> None:
        dim = input_shape[-1]
        self.gamma = new_weight(self, "gamma", (dim,), "ones")
        self.beta = new_weight(self, "beta", (dim,), "zeros")

    def get_config(self) -> dict:
        return {**super().get_config(), "layer_norm_epsilon": self.layer_norm_epsilon}

    def call(self, x: Any) -> Any:
        x32 = ops.cast(x, "float32")
        mean = ops.mean(x32, axis=-1, keepdims=True)
        var = ops.mean(ops.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * ops.rsqrt(var + self.layer_norm_epsilon)
        y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)


def _dropout(rate: float, policy: Any) -> keras.layers.Dropout:
    """A Dropout that keeps its input's dtype (no autocast): it never gets a path of its own,
    so under a `DTypePolicyMap` it would cast to the map's default dtype."""
    return keras.layers.Dropout(rate, dtype=policy, autocast=False)


def split_heads(x: Any, parts: int, num_heads: int) -> Any:
    """(B, S, parts·D) → (parts, B, heads, S, D / heads), in one transpose.

    Heads go before the sequence so that both attention products are plain batched
    matmuls: with einsums over (B, S, heads, head_dim) instead, a JAX forward pass
    is slower (benchmarks/README.md, ablation).
    """
    seq, width = ops.shape(x)[1], x.shape[-1]
    x = ops.reshape(x, (-1, seq, parts, num_heads, width // (parts * num_heads)))
    return ops.transpose(x, (2, 0, 3, 1, 4))


def merge_heads(x: Any) -> Any:
    """(B, heads, S, head_dim) → (B, S, heads · head_dim)."""
    _, heads, seq, head_dim = ops.shape(x)
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (-1, seq, heads * head_dim))


def attend(
    q: Any,
    k: Any,
    v: Any,
    mask: Any = None,
    soft_cap: float | None = None,
    dropout: keras.layers.Dropout | None = None,
    training: bool | None = None,
) -> Any:
    """Scaled dot-product attention on (B, heads, S, head_dim) tensors.

    `q` must already carry its scale. `mask` broadcasts to (B, heads, S_q, S_k),
    True where a query may look at a key. `soft_cap` (the attention logit soft cap)
    gives `cap · tanh(logits / cap)`; None or 0 leaves the logits as they are.
    Returns (B, heads, S_q, head_dim).
    """
    logits = ops.cast(ops.matmul(q, ops.swapaxes(k, -1, -2)), "float32")
    if soft_cap:
        logits = soft_cap * ops.tanh(logits / soft_cap)
    if mask is not None:
        logits = ops.where(mask, logits, MASKED_LOGIT)
    probs = ops.cast(ops.softmax(logits, axis=-1), v.dtype)
    if dropout is not None:
        probs = dropout(probs, training=training)
    return ops.matmul(probs, v)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with one fused (D, 3D) query/key/value projection.

    Args:
        num_heads: int. Attention heads; they divide the input width.
        attention_logit_soft_cap: float or None. `cap · tanh(logits / cap)` on the
            attention logits; None disables it. Defaults to `None`.
        dropout_rate: float. Dropout on the attention probabilities (training only).
            Defaults to `0.0`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    soft_cap = renamed_attribute("attention_logit_soft_cap")

    @renamed_arguments(soft_cap="attention_logit_soft_cap")
    def __init__(
        self,
        num_heads: int,
        attention_logit_soft_cap: float | None = None,
        dropout_rate: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.attention_logit_soft_cap = attention_logit_soft_cap
        self.dropout_rate = dropout_rate
        self.dropout = _dropout(dropout_rate, self.dtype_policy)

    def build(self, input_shape: tuple) -> None:
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"hidden_dim={dim} is not divisible by num_heads={self.num_heads}")
        self.qkv_proj = Projection(3 * dim, dtype=self.dtype_policy, name="qkv_proj")
        self.out_proj = Projection(dim, dtype=self.dtype_policy, name="out_proj")
        self.qkv_proj.build((None, dim))
        self.out_proj.build((None, dim))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "attention_logit_soft_cap": self.attention_logit_soft_cap,
            "dropout_rate": self.dropout_rate,
        }

    def call(self, x: Any, attention_mask: Any = None, training: bool | None = None) -> Any:
        # x: (B, S, D) -> (B, S, D)
        qkv = split_heads(self.qkv_proj(x), 3, self.num_heads)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, S, head_dim)
        q = q * ops.cast((x.shape[-1] // self.num_heads) ** -0.5, q.dtype)
        cap = self.attention_logit_soft_cap
        out = attend(q, k, v, attention_mask, cap, self.dropout, training)
        return self.out_proj(merge_heads(out))


@keras.saving.register_keras_serializable(package="videoprism_keras")
class MLP(keras.layers.Layer):
    """Two dense layers with an activation (and dropout) between them.

    Args:
        intermediate_dim: int. Width of the hidden layer.
        activation: str. "gelu" (exact, erf) or "relu". Defaults to `"gelu"`.
        dropout_rate: float. Dropout on the hidden activations (training only).
            Defaults to `0.0`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    def __init__(
        self,
        intermediate_dim: int,
        activation: str = "gelu",
        dropout_rate: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout_rate = dropout_rate
        self.dropout = _dropout(dropout_rate, self.dtype_policy)

    def build(self, input_shape: tuple) -> None:
        dim, policy = input_shape[-1], self.dtype_policy
        self.in_proj = Projection(
            self.intermediate_dim, self.activation, dtype=policy, name="in_proj"
        )
        self.out_proj = Projection(dim, dtype=policy, name="out_proj")
        self.in_proj.build((None, dim))
        self.out_proj.build((None, self.intermediate_dim))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "dropout_rate": self.dropout_rate,
        }

    def call(self, x: Any, training: bool | None = None) -> Any:
        # Exact (erf) GELU in the vision encoders, ReLU in the text encoder.
        h = self.dropout(self.in_proj(x), training=training)
        return self.out_proj(h)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class TransformerBlock(keras.layers.Layer):
    """`x + Attn(LN(x))`, then `x + MLP(LN(x))`; residual dropout on both branches.

    Args:
        num_heads: int. Attention heads.
        intermediate_dim: int. Width of the MLP's hidden layer.
        activation: str. The MLP's activation, "gelu" (exact) or "relu". Defaults
            to `"gelu"`.
        attention_logit_soft_cap: float or None. `cap · tanh(logits / cap)` on the
            attention logits; None disables it. Defaults to `None`.
        dropout_rate: float. Dropout on both residual branches and the MLP's hidden
            activations (training only). Defaults to `0.0`.
        attention_dropout_rate: float. Dropout on the attention probabilities
            (training only). Defaults to `0.0`.
        layer_norm_epsilon: float. Epsilon of both LayerNorms. Defaults to `1e-6`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    @renamed_arguments(soft_cap="attention_logit_soft_cap", epsilon="layer_norm_epsilon")
    def __init__(
        self,
        num_heads: int,
        intermediate_dim: int,
        activation: str = "gelu",
        attention_logit_soft_cap: float | None = None,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.options = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            activation=activation,
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
        )
        policy = self.dtype_policy
        self.attention_norm = LayerNorm(layer_norm_epsilon, dtype=policy, name="attention_norm")
        self.attention = SelfAttention(
            num_heads,
            attention_logit_soft_cap,
            attention_dropout_rate,
            dtype=policy,
            name="attention",
        )
        self.mlp_norm = LayerNorm(layer_norm_epsilon, dtype=policy, name="mlp_norm")
        self.mlp = MLP(intermediate_dim, activation, dropout_rate, dtype=policy, name="mlp")
        self.residual_dropout = _dropout(dropout_rate, policy)

    def build(self, input_shape: tuple) -> None:
        for layer in (self.attention_norm, self.attention, self.mlp_norm, self.mlp):
            layer.build(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.options}

    def call(self, x: Any, attention_mask: Any = None, training: bool | None = None) -> Any:
        # Branches come back in the stream's dtype: under a policy map they may compute in
        # another one (TensorFlow adds only equal dtypes).
        h = self.attention(self.attention_norm(x), attention_mask=attention_mask, training=training)
        x = x + ops.cast(self.residual_dropout(h, training=training), x.dtype)
        h = self.mlp(self.mlp_norm(x), training=training)
        return x + ops.cast(self.residual_dropout(h, training=training), x.dtype)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class TransformerStack(keras.layers.Layer):
    """`num_layers` TransformerBlocks applied in order, all sharing one mask.

    `remat=True` rematerialises each block (gradient checkpointing): training keeps
    only the blocks' inputs and recomputes the rest during the backward pass, trading
    one more forward pass for activation memory (benchmarks/README.md, train step).

    Args:
        num_layers: int. Blocks in the stack.
        name: str or None. The layer's name. Defaults to `None`.
        dtype: a dtype, a `keras.DTypePolicy` or a `DTypePolicyMap`, handed down to
            every block. Defaults to `None` (Keras' default policy).
        trainable: bool. Whether the weights train. Defaults to `True`.
        remat: bool. Rematerialise each block in training. Defaults to `False`.
        **block_kwargs: every block's `TransformerBlock` arguments (`num_heads`,
            `intermediate_dim`, `attention_logit_soft_cap`, `layer_norm_epsilon`, ...).
    """

    @renamed_arguments(soft_cap="attention_logit_soft_cap", epsilon="layer_norm_epsilon")
    def __init__(
        self,
        num_layers: int,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        remat: bool = False,
        **block_kwargs: Any,
    ):
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.num_layers = num_layers
        self.remat = bool(remat)
        self.block_options = block_kwargs
        self.blocks = [
            TransformerBlock(**block_kwargs, dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(num_layers)
        ]

    def build(self, input_shape: tuple) -> None:
        for block in self.blocks:
            block.build(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "remat": self.remat,
            **self.block_options,
        }

    def call(self, x: Any, attention_mask: Any = None, training: bool | None = None) -> Any:
        for block in self.blocks:
            if self.remat and training:
                x = kernels.remat(block, x, attention_mask=attention_mask, training=training)
            else:
                x = block(x, attention_mask=attention_mask, training=training)
        return x
