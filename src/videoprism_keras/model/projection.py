"""`Projection` (every dense projection of the model) and `TokenEmbedding`: Keras layers.

Design. The attention (fused query/key/value, output), MLP, patch and pooler
projections are each a `Projection` layer that owns its `kernel` and `bias` as a
`Dense` does (same variable names, same saved layout: `<layer>/vars/0` kernel,
`vars/1` bias). That gives the Keras machinery for free, the Keras way:

- `model.quantize("int8" | "int4" | "float8")` finds these leaf layers and calls
  `Dense.quantize`, which swaps the kernel for its quantized variables and gives
  the layer a quantized dtype policy; `Dense.quantized_call` runs it afterwards,
  and `Dense.save_own_variables`/`load_own_variables` save and load it.
- A quantized model's config carries a `DTypePolicyMap` (layer path → quantized
  policy, as keras_hub writes it); a model built from it builds the quantized
  variables directly, so quantized presets and `.keras` files load.
- `Dense.enable_lora(rank)` works unchanged (its variables, saving merged into the
  kernel as Dense does); `call` adds the adapters' product beside the frozen kernel.
- The text tower's token table is a `keras.layers.Embedding` likewise (int8/int4).

Only the float path is ours: `call` runs `kernels.linear`, the backend-specific
fused GEMM + bias (+ activation) that is the speed-critical part of a forward
pass, exactly as before. The activation is kept out of `Dense.activation`
because Keras' "gelu" is the tanh approximation and the vision encoders use the
exact (erf) one; the quantized path applies it after `Dense.quantized_call`.

Weight paths (`weight_tables`): `<stack>.blocks.<i>.attention.qkv_proj.kernel`,
`...attention.out_proj`, `...mlp.in_proj`/`out_proj`, `video_encoder.patch_proj`,
`<pooler>.q_proj`/`kv_proj`/`out_proj`, `text_encoder.token_embedding.embeddings`.
Weights files from before (projection weights on their owner layer) load through
`weight_tables.legacy_renames`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .init import initializer
from .kernels import activate, int8_matmul, linear


class _PolicyMapSafeQuantize:
    """`quantize` for a Keras layer that may hold a `DTypePolicyMap`.

    Keras' `Dense.quantize` and `Embedding.quantize` name the new policy after
    `layer.dtype_policy.name`, which for a layer given a map is the map's own name
    ("map_float32"), not a dtype, and fail. Here they see the layer's own policy
    (the map's entry for its path), and the quantized policy goes back into the map
    under the layer's path, as the `dtype_policy` setter does for maps.
    """

    def quantize(self, mode: str | None = None, type_check: bool = True, config: Any = None):
        # Keras refuses subclasses unless told that this one is fine (it is: only
        # `call` differs, and the quantized call is Keras' own).
        policy_map = self._dtype_policy
        if not isinstance(policy_map, keras.dtype_policies.DTypePolicyMap):
            return super().quantize(mode, type_check=False, config=config)
        self._dtype_policy = policy_map[self.path]
        try:
            super().quantize(mode, type_check=False, config=config)
        finally:
            quantized, self._dtype_policy = self._dtype_policy, policy_map
            if self.path in policy_map:
                del policy_map[self.path]
            policy_map[self.path] = quantized


@keras.saving.register_keras_serializable(package="videoprism_keras")
class TokenEmbedding(_PolicyMapSafeQuantize, keras.layers.Embedding):
    """`keras.layers.Embedding` whose `quantize` also works under a `DTypePolicyMap`."""

    # Keras' Embedding has no float8 path.
    quantization_modes = ("int8", "int4")


@keras.saving.register_keras_serializable(package="videoprism_keras")
class Projection(_PolicyMapSafeQuantize, keras.layers.Dense):
    """`activation(x @ kernel + bias)`: a `keras.layers.Dense` with its activation fused.

    Args:
        units: int. Output width.
        activation: str or None. None, "gelu" (exact, erf) or "relu". Defaults to
            `None`.
        kernel_initializer: the kernel's initializer (zeros inside
            `skip_initialization`). Defaults to `"glorot_uniform"`.
        **kwargs: `keras.layers.Dense` arguments (every projection has a bias:
            `use_bias` is ignored).
    """

    quantization_modes = ("int8", "int4", "float8")

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ):
        if activation not in (None, "gelu", "relu"):
            raise ValueError(
                f"Projection activation must be None, 'gelu' or 'relu'. Received: {activation!r}"
            )
        kwargs.pop("use_bias", None)  # every projection of the model has a bias
        super().__init__(
            units, activation=None, kernel_initializer=initializer(kernel_initializer), **kwargs
        )
        self.fused_activation = activation

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not (self.lora_enabled and training):
            # `kernel`: the variable, or Dense's merged W + s·A·B, so that LoRA at init
            # gives exactly the base outputs.
            return linear(inputs, self.kernel, self.bias, self.fused_activation)
        # Training: x·W + s·(x·A)·B, so that the frozen W needs no gradient of its own
        # (a whole GEMM less per projection in the backward pass) and no merged kernel
        # is made and kept for it; 2-D products, as in `linear` (XLA runs N-D ones slower:
        # benchmarks/README.md, training step).
        scale = self.lora_alpha / self.lora_rank
        lead, flat = ops.shape(inputs)[:-1], ops.reshape(inputs, (-1, inputs.shape[-1]))
        low = ops.matmul(ops.matmul(flat, self.lora_kernel_a), self.lora_kernel_b)
        y = linear(inputs, self._kernel, self.bias) + scale * ops.reshape(low, (*lead, self.units))
        return activate(y, self.fused_activation)

    def quantized_call(self, inputs: Any, training: bool | None = None) -> Any:
        if self._int8_inference(training):
            y = self._int8_call_fast(inputs)
        else:
            y = super().quantized_call(inputs, training=training)
        return activate(y, self.fused_activation)

    def _int8_inference(self, training: bool | None) -> bool:
        """Whether `_int8_call_fast` computes this call: int8 with quantized inputs, no
        LoRA, not training (Keras' call carries the custom gradient), on the backends
        whose own int8 matmul is slow on the CPU (JAX's XLA one is not)."""
        return (
            self.quantization_mode == "int8"
            and self.inputs_quantizer is not None
            and not self.lora_enabled
            and not training
            and keras.backend.backend() in ("tensorflow", "torch")
        )

    def _int8_call_fast(self, inputs: Any) -> Any:
        """`Dense._int8_call`'s arithmetic, op for op, with its int8 GEMM as one 2-D
        `kernels.int8_matmul` (oneDNN's, exact in int32): the same outputs, faster."""
        quantized, inputs_scale = self.inputs_quantizer(inputs, axis=-1)
        lead = ops.shape(quantized)[:-1]
        flat = ops.reshape(quantized, (-1, quantized.shape[-1]))
        x = int8_matmul(flat, ops.convert_to_tensor(self._kernel))
        x = ops.cast(ops.reshape(x, (*lead, self.units)), self.compute_dtype)
        x = ops.divide(x, ops.multiply(ops.convert_to_tensor(self.kernel_scale), inputs_scale))
        return ops.add(x, self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.fused_activation}
