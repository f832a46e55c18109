"""Reading keras_hub's VideoPrism presets (`config.json` + `model.weights.h5`).

keras_hub saves its functional model's weights under names Keras derives from
class names and graph order (`layers/video_prism_encoder_2/encoder_layers/...`),
not from the layers' own names. Its encoders appear in the order spatial,
temporal, then the text and auxiliary stacks; the auxiliary one is the only
encoder without a final LayerNorm. `KERAS_HUB_TABLE` maps those names to ours.
"""

import re

import h5py
import numpy as np

from .checkpoint import _resolve, assign_weights

# Per block: our weight ← keras_hub tensors (relative to `.../video_prism_encoder_block{_i}/`).
KERAS_HUB_BLOCK = [
    ("attention_norm.gamma", ["layer_norm_1/vars/0"], "copy"),
    ("attention_norm.beta", ["layer_norm_1/vars/1"], "copy"),
    (
        "attention.qkv_kernel",
        [f"mha/{n}_dense/vars/0" for n in ("query", "key", "value")],
        "heads_in",
    ),
    (
        "attention.qkv_bias",
        [f"mha/{n}_dense/vars/1" for n in ("query", "key", "value")],
        "heads_in",
    ),
    ("attention.out_kernel", ["mha/output_dense/vars/0"], "heads_flat"),
    ("attention.out_bias", ["mha/output_dense/vars/1"], "copy"),
    ("mlp_norm.gamma", ["layer_norm_2/vars/0"], "copy"),
    ("mlp_norm.beta", ["layer_norm_2/vars/1"], "copy"),
    ("mlp.in_kernel", ["mlp/dense_1/vars/0"], "copy"),
    ("mlp.in_bias", ["mlp/dense_1/vars/1"], "copy"),
    ("mlp.out_kernel", ["mlp/dense_2/vars/0"], "copy"),
    ("mlp.out_bias", ["mlp/dense_2/vars/1"], "copy"),
]

_POOL = "layers/video_prism_atten_token_pooling_layer/"
_PATCH = "layers/video_prism_patching_and_embedding/"
KERAS_HUB_TABLE = [
    ("video_encoder.patch_kernel", [f"{_PATCH}patch_embedding/vars/0"], "copy"),
    ("video_encoder.patch_bias", [f"{_PATCH}patch_embedding/vars/1"], "copy"),
    ("video_encoder.spatial_positions.table", [f"{_PATCH}position_embedding/vars/0"], "positions"),
    (
        "video_encoder.temporal_positions.table",
        ["layers/video_prism_temporal_embedding/embedding/vars/0"],
        "positions",
    ),
    ("video_pooler.query", [f"{_POOL}vars/0"], "copy"),
    ("video_pooler.q_kernel", [f"{_POOL}pooling_attention/query_dense/vars/0"], "heads_in"),
    ("video_pooler.q_bias", [f"{_POOL}pooling_attention/query_dense/vars/1"], "heads_in"),
    (
        "video_pooler.kv_kernel",
        [f"{_POOL}pooling_attention/{n}_dense/vars/0" for n in ("key", "value")],
        "heads_in",
    ),
    (
        "video_pooler.kv_bias",
        [f"{_POOL}pooling_attention/{n}_dense/vars/1" for n in ("key", "value")],
        "heads_in",
    ),
    (
        "video_pooler.per_dim_scale",
        [f"{_POOL}pooling_attention/per_dim_scale_layer/vars/0"],
        "copy",
    ),
    ("video_pooler.out_kernel", [f"{_POOL}pooling_attention/output_dense/vars/0"], "heads_flat"),
    ("video_pooler.out_bias", [f"{_POOL}pooling_attention/output_dense/vars/1"], "copy"),
    ("video_pooler.norm.gamma", [f"{_POOL}layer_norm/vars/0"], "copy"),
    ("video_pooler.norm.beta", [f"{_POOL}layer_norm/vars/1"], "copy"),
    (
        "text_encoder.token_embedding",
        ["layers/video_prism_embedding/token_embedding/vars/0"],
        "copy",
    ),
    ("text_encoder.class_token", ["layers/video_prism_embedding/class_token/vars/0"], "squeeze"),
    ("text_encoder.norm.gamma", ["layers/layer_normalization/vars/0"], "copy"),
    ("text_encoder.norm.beta", ["layers/layer_normalization/vars/1"], "copy"),
]

# Final LayerNorms of keras_hub's encoders; the text encoder's own one comes on top of
# `layers/layer_normalization`, with weights that stay at their (1, 0) initial values.
_FINAL_NORMS = {
    "video_encoder.spatial_encoder": "video_encoder.spatial_norm",
    "video_encoder.temporal_encoder": "video_encoder.temporal_norm",
}


def read_h5(path) -> dict:
    """Every dataset of a Keras `.weights.h5` file, by its path."""
    tensors = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: (
                    tensors.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
                )
            )
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not a readable Keras weights file: {err}") from err
    return tensors


def _encoders(tensors):
    """keras_hub's encoder groups in saved order → (their blocks, has a final LayerNorm)."""
    found: dict = {}
    for key in tensors:
        match = re.match(r"layers/(video_prism_encoder(?:_\d+)?)/", key)
        if match:
            found.setdefault(match.group(1), set()).add(key)
    order = sorted(found, key=lambda n: int(n.rsplit("_", 1)[1]) if n[-1].isdigit() else 0)
    return [
        (name, any(k.startswith(f"layers/{name}/layer_norm/") for k in found[name]))
        for name in order
    ]


def keras_hub_rows(model, tensors) -> list:
    encoders = _encoders(tensors)
    auxiliary = [name for name, has_norm in encoders if not has_norm]
    others = [name for name, has_norm in encoders if has_norm]
    stacks = ["video_encoder.spatial_encoder", "video_encoder.temporal_encoder"]
    if model.is_multimodal:
        stacks.append("text_encoder.transformer")
    rows = list(KERAS_HUB_TABLE)
    pairs = list(zip(stacks, others, strict=False))
    if model.auxiliary_encoder is not None and auxiliary:
        pairs.append(("auxiliary_encoder", auxiliary[0]))
    for ours, theirs in pairs:
        stack = _resolve(model, ours)
        for i in range(stack.num_layers):
            block = (
                f"layers/{theirs}/encoder_layers/video_prism_encoder_block{f'_{i}' if i else ''}/"
            )
            rows += [
                (f"{ours}.blocks.{i}.{o}", [block + k for k in ks], kind)
                for o, ks, kind in KERAS_HUB_BLOCK
            ]
        norm = _FINAL_NORMS.get(ours)
        if norm:
            rows.append((f"{norm}.gamma", [f"layers/{theirs}/layer_norm/vars/0"], "copy"))
            rows.append((f"{norm}.beta", [f"layers/{theirs}/layer_norm/vars/1"], "copy"))
    return [row for row in rows if _resolve(model, row[0]) is not None]


def load_keras_hub_weights(model, path) -> None:
    """Loads keras_hub's `model.weights.h5` into our `model` (built from the same config)."""
    tensors = read_h5(path)
    rows = keras_hub_rows(model, tensors)
    text = [name for name, has_norm in _encoders(tensors) if has_norm][2:3]
    for name in text:  # keras_hub's extra text LayerNorm: checked to be the identity, then skipped
        gamma, beta = (tensors.pop(f"layers/{name}/layer_norm/vars/{i}", None) for i in (0, 1))
        if gamma is not None and not (np.allclose(gamma, 1) and np.allclose(beta, 0)):
            raise ValueError(
                f"{str(path)!r}: keras_hub's extra text-encoder LayerNorm has trained weights, "
                "which the official architecture (and ours) does not have"
            )
    assign_weights(model, rows, tensors, repr(str(path)))
