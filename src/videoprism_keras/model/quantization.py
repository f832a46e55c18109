"""Quantizing a model the Keras way, and the dtype configs that describe the result.

`keras.Model.quantize` walks every leaf layer and warns about each one without a
`quantize` method (LayerNorms, position tables, dropouts). Ours walks only the
layers that implement the requested mode (projection.py), so it says nothing when
all is well. A quantized model's config records the quantized layers' policies in
a `DTypePolicyMap` keyed by layer path, as keras_hub writes it, so that a model
built from that config (a `.keras` file, a preset) builds them quantized.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import keras

from ..constants import QUANTIZATION_MODES

# `keras.Model.quantize`'s `filters`: a regex searched in layer names, a list of them, or
# a callable on the layer.
Filters = str | Sequence[str] | Callable[[keras.layers.Layer], bool]


def layer_modes(layer: keras.layers.Layer) -> tuple[str, ...]:
    """The quantization modes `layer` implements (none for layers without weights to quantize)."""
    modes = getattr(layer, "quantization_modes", None)
    if modes is not None:
        return modes
    if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
        return QUANTIZATION_MODES
    if isinstance(layer, keras.layers.Embedding):
        return ("int8", "int4")
    return ()


def quantize_filter(
    mode: str, filters: Filters | None = None
) -> Callable[[keras.layers.Layer], bool]:
    """`keras.Model.quantize`'s `filters`, narrowed to the layers that implement `mode`.

    `filters` is what Keras takes: a regex (or a list of them) searched in layer
    names, or a callable on the layer.
    """
    if mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"quantize() takes a mode in {QUANTIZATION_MODES} (or a keras.quantizers config "
            f"for one of them). Received: mode={mode!r}"
        )
    if (
        filters is not None
        and not isinstance(filters, (str, list, tuple))
        and not callable(filters)
    ):
        raise ValueError(
            "quantize() filters must be a regex string, a list of them, or a callable. "
            f"Received: filters={filters!r}"
        )
    patterns = [filters] if isinstance(filters, str) else filters

    def wanted(layer):
        if mode not in layer_modes(layer):
            return False
        if filters is None:
            return True
        if callable(filters):
            return bool(filters(layer))
        return any(re.search(p, layer.name) for p in patterns)

    return wanted


def quantize(
    model: keras.Model,
    quantize_all: Callable[..., None],
    mode: str | None = None,
    config: Any = None,
    filters: Filters | None = None,
    **kwargs: Any,
) -> None:
    """Runs `quantize_all` (`keras.Model.quantize` of `model`) on the quantizable layers."""
    if mode is None and config is not None:
        mode = getattr(config, "mode", None)
    if any(layer.quantization_mode for layer in model._flatten_layers(include_self=False)):
        raise ValueError(
            f"{type(model).__name__} is already quantized; quantize a float model (reload it). "
            f"Received: mode={mode!r}"
        )
    quantize_all(mode, config=config, filters=quantize_filter(mode, filters), **kwargs)


def dtype_config(model: keras.Model) -> dict:
    """`model`'s dtype for its config: its policy, or a `DTypePolicyMap` holding the
    policy of every quantized layer by path (the model's policy as the default)."""
    policy = model.dtype_policy
    if not isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        quantized = {
            layer.path: layer.dtype_policy
            for layer in model._flatten_layers(include_self=False)
            if layer.quantization_mode is not None
        }
        if quantized:
            policy = keras.dtype_policies.DTypePolicyMap(policy, quantized)
    return keras.dtype_policies.serialize(policy)


def rebase(saved: Any, dtype: Any) -> Any:
    """The dtype for a model loaded from a config whose dtype is `saved` when the caller
    asks for `dtype`: `dtype` itself, or, when `saved` records quantized layers, the same
    map with `dtype` as its default and as the source dtype of every quantized policy
    (the quantized weights stay; their computation follows `dtype`)."""
    saved = keras.dtype_policies.get(saved) if saved is not None else None
    if isinstance(dtype, keras.dtype_policies.DTypePolicyMap):
        return dtype
    if not isinstance(saved, keras.dtype_policies.DTypePolicyMap):
        return dtype
    source = keras.dtype_policies.get(dtype).name
    entries = {}
    for path in saved.keys():
        policy = saved[path]
        if policy.quantization_mode is not None:
            mode = policy.name.rsplit("_from_", 1)[0]  # "int8", "int4/-1", "float8"...
            policy = keras.dtype_policies.get(f"{mode}_from_{source}")
        entries[path] = policy
    return keras.dtype_policies.DTypePolicyMap(source, entries)


def model_precision(model: keras.Model) -> str:
    """What `model` computes in: "int8" (or another mode) once quantized by Keras, else its
    dtype policy's compute dtype."""
    for layer in model._flatten_layers(include_self=False):
        if layer.quantization_mode is not None:
            return layer.quantization_mode
    return keras.backend.standardize_dtype(model.dtype_policy.compute_dtype)
