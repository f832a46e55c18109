"""Low-rank adapters (LoRA) on a model's `Projection` layers, keras_hub's way.

`enable(model, rank)` freezes every weight of the model, then calls Keras'
`Dense.enable_lora` on the targeted projections: each gets two float32 matrices
`lora_kernel_a` (in, r) and `lora_kernel_b` (r, out), B zero at first, and computes
with `kernel + (alpha / r) · A @ B` (`Projection.call` reads `Dense.kernel`, which
adds them). Only A and B train: the kernel and bias of an adapted layer are frozen
like everything else, so the trainable count is `r · (in + out)` per layer.

Targets (`LORA_TARGETS`): the fused query/key/value and output projections of every
attention, the two MLP projections of every transformer block (video, auxiliary and
text stacks), and the query/key-value/output projections of the attention poolers.
The patch projection, embeddings, position tables and norms stay frozen.

Adapters save alone (`save`, a small file: `r · (in + out)` floats per layer), keyed by the
layer's path inside the model, so they load into any model of the same
architecture with LoRA of the same rank enabled. `merge` folds them into the
kernels and removes them: the model computes as before, without the extra matmul.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from ..constants import LORA_FILE_SUFFIX, LORA_TARGETS


def adapted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """{path inside `model`: layer} of the layers with LoRA enabled."""
    return {
        _relative_path(model, layer): layer
        for layer in model._flatten_layers(include_self=False)
        if getattr(layer, "lora_enabled", False)
    }


def enable(
    model: keras.Model,
    rank: int,
    target_names: Sequence[str] | None = None,
    lora_alpha: float | None = None,
) -> list[keras.layers.Layer]:
    """LoRA of `rank` on the named projections of `model`; everything else frozen."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer. Received: rank={rank!r}")
    names = tuple(LORA_TARGETS if target_names is None else target_names)
    if adapted_layers(model):
        raise ValueError("LoRA is already enabled on this model; it can be enabled only once")
    if getattr(model, "quantization_mode", None) or _any_quantized(model):
        raise ValueError("enable LoRA before quantizing: this model is already quantized")
    targets = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if layer.name in names and hasattr(layer, "enable_lora")
    ]
    if not targets:
        raise ValueError(
            f"no layer of the model is named any of {names}. Received: target_names="
            f"{target_names!r}"
        )
    model.trainable = True
    for variable in model.variables:
        variable.trainable = False
    for layer in targets:
        layer.enable_lora(rank, lora_alpha=lora_alpha)  # A, B trainable; kernel frozen
    _retrack_torch(model)
    return targets


def save(model: keras.Model, filepath: str | os.PathLike) -> None:
    """Writes the adapters alone to `filepath` (an `.lora.h5` file, as keras_hub names it)."""
    import h5py

    layers = adapted_layers(model)
    if not layers:
        raise ValueError("no LoRA to save: call enable_lora(rank) first")
    filepath = str(filepath)
    if not filepath.endswith(LORA_FILE_SUFFIX):
        raise ValueError(
            f"LoRA weights are saved to a file ending in {LORA_FILE_SUFFIX!r}. Received: "
            f"filepath={filepath!r}"
        )
    some = next(iter(layers.values()))
    with h5py.File(filepath, "w") as f:
        f.attrs["rank"] = some.lora_rank
        f.attrs["alpha"] = some.lora_alpha
        for path, layer in layers.items():
            group = f.create_group(path)
            group["lora_kernel_a"] = ops.convert_to_numpy(layer.lora_kernel_a)
            group["lora_kernel_b"] = ops.convert_to_numpy(layer.lora_kernel_b)


def load(model: keras.Model, filepath: str | os.PathLike) -> None:
    """Reads adapters written by `save` into `model`, enabling LoRA of the saved rank
    on the same layers first if it is not enabled yet."""
    import h5py

    filepath = str(filepath)
    try:
        f = h5py.File(filepath, "r")
    except OSError as err:
        raise ValueError(f"cannot read LoRA weights from {filepath!r}: {err}") from None
    with f:
        rank, alpha = int(f.attrs["rank"]), float(f.attrs["alpha"])
        saved = {}

        def collect(name, obj):
            if isinstance(obj, h5py.Group) and "lora_kernel_a" in obj:
                saved[name] = (obj["lora_kernel_a"][()], obj["lora_kernel_b"][()])

        f.visititems(collect)
    layers = adapted_layers(model)
    if not layers:
        names = sorted({path.rsplit("/", 1)[-1] for path in saved})
        enable(model, rank, names, alpha)
        layers = adapted_layers(model)
    if set(layers) != set(saved):
        missing, extra = sorted(set(saved) - set(layers)), sorted(set(layers) - set(saved))
        raise ValueError(
            f"LoRA file {filepath!r} does not fit this model: layers only in the file "
            f"{missing[:3]}, only in the model {extra[:3]}"
        )
    for path, (a, b) in saved.items():
        layer = layers[path]
        if tuple(layer.lora_kernel_a.shape) != a.shape or layer.lora_rank != rank:
            raise ValueError(
                f"LoRA file {filepath!r}: {path} has rank {rank} and shape {a.shape}; the "
                f"model's adapter is rank {layer.lora_rank}, shape "
                f"{tuple(layer.lora_kernel_a.shape)}"
            )
        layer.lora_kernel_a.assign(a)
        layer.lora_kernel_b.assign(b)


def restore(model: keras.Model, filepath: str | os.PathLike) -> None:
    """Adapters written by `save` back into a model loaded from a `.keras` file of the same
    training step. Keras saves a LoRA layer with its adapters merged into the kernel and
    loads it with them zeroed; here they come back and out of the kernel again
    (`kernel -= alpha / r · A @ B`, exact to float rounding), so that training goes on
    from them, not from new zero adapters (which could not even learn: with A = B = 0
    neither has a gradient)."""
    load(model, filepath)
    for layer in adapted_layers(model).values():
        merged = layer._kernel - (layer.lora_alpha / layer.lora_rank) * ops.matmul(
            layer.lora_kernel_a, layer.lora_kernel_b
        )
        layer._kernel.assign(ops.cast(merged, layer._kernel.dtype))


def merge(model: keras.Model) -> None:
    """Folds every adapter into its kernel and removes it (`kernel += alpha / r · A @ B`)."""
    layers = adapted_layers(model)
    if not layers:
        raise ValueError("no LoRA to merge: call enable_lora(rank) first")
    for layer in layers.values():
        merged = layer._kernel + (layer.lora_alpha / layer.lora_rank) * ops.matmul(
            layer.lora_kernel_a, layer.lora_kernel_b
        )
        layer._kernel.assign(ops.cast(merged, layer._kernel.dtype))
        # Untracked and dropped by hand: `del` on a Keras layer runs a full `gc.collect()`
        # per variable (slow in a large process).
        for name in ("lora_kernel_a", "lora_kernel_b"):
            layer._untrack_variable(getattr(layer, name))
            object.__delattr__(layer, name)
        layer.lora_enabled, layer.lora_rank, layer.lora_alpha = False, None, None
    _retrack_torch(model)


def trainable_count(model: keras.Model) -> int:
    """The number of trainable parameters of `model`."""
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def _relative_path(model: keras.Model, layer: keras.layers.Layer) -> str:
    prefix = model.path + "/" if model.path else ""
    path = layer.path
    return path[len(prefix) :] if path.startswith(prefix) else path


def _any_quantized(model: keras.Model) -> bool:
    return any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())


def _retrack_torch(model: keras.Model) -> None:
    """On PyTorch every Keras layer keeps a `ParameterDict` of its variables, made at
    build time: rebuilt here, so that `parameters()` sees the adapters (and not the
    merged ones)."""
    if keras.backend.backend() != "torch":
        return
    for layer in model._flatten_layers(include_self=True):
        if hasattr(layer, "_torch_params"):
            layer._track_variables()
