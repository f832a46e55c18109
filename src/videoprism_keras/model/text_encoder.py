"""The CoCa-style causal text tower: token ids → one (B, D) text embedding.

Token embeddings are scaled by sqrt(D) and summed with a fixed sinusoidal table.
A learned class token (also × sqrt(D), no position) is appended *after* the
padded tokens; causal attention lets it read every real token, and its final
state, after a LayerNorm, is the text embedding.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ..deprecation import renamed_arguments
from .embeddings import sinusoidal_positions
from .init import initializer, new_weight
from .projection import TokenEmbedding
from .transformer import LayerNorm, TransformerStack


@keras.saving.register_keras_serializable(package="videoprism_keras")
class TextEncoder(keras.layers.Layer):
    """(B, L) token ids and padding mask (1 = real token) → (B, D) text embedding.

    Args:
        vocabulary_size: int. Rows of the token table.
        num_layers: int. Transformer blocks (causal, ReLU MLP of width 4·D).
        hidden_dim: int. Width D of the tower.
        num_heads: int. Attention heads.
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
        vocabulary_size: int,
        num_layers: int,
        hidden_dim: int,
        num_heads: int,
        attention_logit_soft_cap: float | None = None,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        remat: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            vocabulary_size=vocabulary_size,
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            remat=remat,
        )
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        # The official text tower always uses a 4·D ReLU MLP, whatever the vision MLP.
        self.transformer = TransformerStack(
            num_layers,
            num_heads=num_heads,
            intermediate_dim=4 * hidden_dim,
            activation="relu",
            attention_logit_soft_cap=attention_logit_soft_cap,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            remat=remat,
            dtype=self.dtype_policy,
            name="transformer",
        )
        self.norm = LayerNorm(layer_norm_epsilon, dtype=self.dtype_policy, name="norm")
        normal = keras.initializers.RandomNormal(stddev=hidden_dim**-0.5)
        # A Keras Embedding (not a bare weight): it quantizes (int8/int4) the Keras way,
        # and is what keras_hub's `Backbone.token_embedding` convention hands out.
        self.token_embedding = TokenEmbedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=initializer(normal),
            dtype=self.dtype_policy,
            name="token_embedding",
        )

    def build(self, input_shape: tuple | None = None) -> None:
        dim = self.hidden_dim
        normal = keras.initializers.RandomNormal(stddev=dim**-0.5)
        self.token_embedding.build((None, None))
        self.class_token = new_weight(self, "class_token", (dim,), normal)
        self.transformer.build((None, None, dim))
        self.norm.build((None, dim))

    def get_config(self) -> dict:
        return {**super().get_config(), **self._config}

    def call(self, token_ids: Any, padding_mask: Any, training: bool | None = None) -> Any:
        # token_ids, padding_mask: (B, L), mask 1 = real token -> (B, D)
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        scale = ops.cast(self.hidden_dim**0.5, self.compute_dtype)
        x = self.token_embedding(ops.cast(token_ids, "int32")) * scale
        x = x + ops.cast(sinusoidal_positions(length, self.hidden_dim), self.compute_dtype)
        cls = ops.broadcast_to(self.class_token * scale, (batch, 1, self.hidden_dim))
        x = ops.concatenate([x, ops.cast(cls, x.dtype)], axis=1)  # (B, L+1, D)

        real = ops.concatenate(
            [ops.cast(padding_mask, "bool"), ops.ones((batch, 1), dtype="bool")], axis=1
        )
        causal = ops.tril(ops.ones((length + 1, length + 1), dtype="bool"))
        mask = ops.logical_and(real[:, None, None, :], causal[None, None])  # (B, 1, L+1, L+1)
        x = self.norm(self.transformer(x, attention_mask=mask, training=training))
        return x[:, -1]
