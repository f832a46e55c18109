"""Which of our weights each checkpoint tensor becomes, and how: the one home of the tables.

Two formats are read: Google's official Flax release (`flax_*_repeated.npz`, flat
`params/...` keys, transformer stacks saved with `scan=True` so every layer's tensor
is stacked on a leading axis under `.../x_layers/...`) and keras_hub's presets
(`model.weights.h5`, names Keras derives from class names and graph order). A row is
(our weight path, [source tensors], conversion); `convert` and `unconvert` are exact
inverses, so the same rows also write the official format.

Pure numpy: nothing here builds or loads a model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .model.embeddings import resize_positions

if TYPE_CHECKING:
    import keras

# One row of a table: (our weight's dotted path, [source tensor keys], conversion kind).
Row = tuple[str, list[str], str]

# Official stack name → our stack, for the prefix `{enc}` of the vision encoder
# ("" for video-only, "vision_encoder/" for LvT, "encoder/" for the classifier).
STACKS = {
    "video_encoder.spatial_encoder": "{enc}spatial_encoder/transformers_stack/x_layers/",
    "video_encoder.temporal_encoder": "{enc}temporal_encoder/transformers_stack/x_layers/",
    "auxiliary_encoder": "auxiliary_encoder/transformers_stack/x_layers/",
    "text_encoder.transformer": "text_encoder/unimodal_transformer/x_layers/",
}

# Our weight (".blocks.{i}." is inserted for stacks) ← official tensors, conversion.
# Conversions: "copy"; "ln_scale" (official stores gamma − 1); "heads_in"
# ((D, heads, hd) kernels or (heads, hd) biases, concatenated along the output);
# "heads_out" ((D, heads, hd) used as `...NH,DNH->...D` → (heads·hd, D));
# "positions" (resized when our table has another shape); "squeeze".
ATTENTION = "self_attention/"
BLOCK_TABLE = [
    ("attention_norm.gamma", ["layer_norm/scale"], "ln_scale"),
    ("attention_norm.beta", ["layer_norm/bias"], "copy"),
    (
        "attention.qkv_proj.kernel",
        [f"{ATTENTION}{n}/w" for n in ("query", "key", "value")],
        "heads_in",
    ),
    (
        "attention.qkv_proj.bias",
        [f"{ATTENTION}{n}/b" for n in ("query", "key", "value")],
        "heads_in",
    ),
    ("attention.out_proj.kernel", [f"{ATTENTION}post/w"], "heads_out"),
    ("attention.out_proj.bias", [f"{ATTENTION}post/b"], "copy"),
    ("mlp_norm.gamma", ["ff_layer/layer_norm/scale"], "ln_scale"),
    ("mlp_norm.beta", ["ff_layer/layer_norm/bias"], "copy"),
    ("mlp.in_proj.kernel", ["ff_layer/ffn_layer1/linear/kernel"], "copy"),
    ("mlp.in_proj.bias", ["ff_layer/ffn_layer1/linear/bias"], "copy"),
    ("mlp.out_proj.kernel", ["ff_layer/ffn_layer2/linear/kernel"], "copy"),
    ("mlp.out_proj.bias", ["ff_layer/ffn_layer2/linear/bias"], "copy"),
]


def pooler_table(ours: str, official: str) -> list[Row]:
    """The attention pooler's weights; shared by the LvT model and the classifier."""
    att = f"{official}pooling_attention/"
    return [
        (f"{ours}.query", [f"{official}pooling_attention_query"], "copy"),
        (f"{ours}.q_proj.kernel", [f"{att}query/w"], "heads_in"),
        (f"{ours}.q_proj.bias", [f"{att}query/b"], "heads_in"),
        (f"{ours}.kv_proj.kernel", [f"{att}key/w", f"{att}value/w"], "heads_in"),
        (f"{ours}.kv_proj.bias", [f"{att}key/b", f"{att}value/b"], "heads_in"),
        (f"{ours}.per_dim_scale", [f"{att}per_dim_scale/per_dim_scale"], "copy"),
        (f"{ours}.out_proj.kernel", [f"{att}post/w"], "heads_out"),
        (f"{ours}.out_proj.bias", [f"{att}post/b"], "copy"),
        (f"{ours}.norm.gamma", [f"{official}pooling_attention_layer_norm/scale"], "ln_scale"),
        (f"{ours}.norm.beta", [f"{official}pooling_attention_layer_norm/bias"], "copy"),
    ]


WEIGHT_TABLE = [
    ("video_encoder.patch_proj.kernel", ["{enc}patch_projection/linear/kernel"], "copy"),
    ("video_encoder.patch_proj.bias", ["{enc}patch_projection/linear/bias"], "copy"),
    ("video_encoder.spatial_positions.table", ["{enc}spatial_pos_emb/emb_var"], "positions"),
    ("video_encoder.spatial_norm.gamma", ["{enc}spatial_ln/scale"], "ln_scale"),
    ("video_encoder.spatial_norm.beta", ["{enc}spatial_ln/bias"], "copy"),
    ("video_encoder.temporal_positions.table", ["{enc}temporal_pos_emb/emb_var"], "positions"),
    ("video_encoder.temporal_norm.gamma", ["{enc}temporal_ln/scale"], "ln_scale"),
    ("video_encoder.temporal_norm.beta", ["{enc}temporal_ln/bias"], "copy"),
    *pooler_table("video_pooler", "contrastive_vision_pooler/"),
    ("text_encoder.token_embedding.embeddings", ["text_encoder/token_emb/emb_var"], "copy"),
    ("text_encoder.class_token", ["text_encoder/cls_emb"], "squeeze"),
    ("text_encoder.norm.gamma", ["text_encoder/unimodal_ln/scale"], "ln_scale"),
    ("text_encoder.norm.beta", ["text_encoder/unimodal_ln/bias"], "copy"),
]


def convert(
    kind: str, arrays: Sequence[np.ndarray], target_grid: Sequence[int] | None = None
) -> np.ndarray:
    """Source tensors → our weight, following one row's conversion `kind`."""
    if kind == "copy":
        return arrays[0]
    if kind == "ln_scale":
        return arrays[0] + 1.0
    if kind == "squeeze":
        return arrays[0].reshape(arrays[0].shape[-1])
    if kind == "heads_in":  # (D, heads, hd) → (D, heads·hd), or (heads, hd) → (heads·hd,)
        lead = arrays[0].shape[:-2]
        return np.concatenate([a.reshape(*lead, -1) for a in arrays], axis=-1)
    if kind == "heads_out":  # (D, heads, hd) → (heads·hd, D)
        return arrays[0].reshape(arrays[0].shape[0], -1).T
    if kind == "heads_flat":  # (heads, hd, D) → (heads·hd, D)
        return arrays[0].reshape(-1, arrays[0].shape[-1])
    if kind == "positions":  # learned tables: 1-D over frames, or a square patch grid
        table = arrays[0]
        source_grid = (len(table),) if len(target_grid) == 1 else (math.isqrt(len(table)),) * 2
        return resize_positions(table, source_grid, target_grid)
    raise AssertionError(kind)


# Per block: our weight ← keras_hub tensors (relative to `.../video_prism_encoder_block{_i}/`).
KERAS_HUB_BLOCK = [
    ("attention_norm.gamma", ["layer_norm_1/vars/0"], "copy"),
    ("attention_norm.beta", ["layer_norm_1/vars/1"], "copy"),
    (
        "attention.qkv_proj.kernel",
        [f"mha/{n}_dense/vars/0" for n in ("query", "key", "value")],
        "heads_in",
    ),
    (
        "attention.qkv_proj.bias",
        [f"mha/{n}_dense/vars/1" for n in ("query", "key", "value")],
        "heads_in",
    ),
    ("attention.out_proj.kernel", ["mha/output_dense/vars/0"], "heads_flat"),
    ("attention.out_proj.bias", ["mha/output_dense/vars/1"], "copy"),
    ("mlp_norm.gamma", ["layer_norm_2/vars/0"], "copy"),
    ("mlp_norm.beta", ["layer_norm_2/vars/1"], "copy"),
    ("mlp.in_proj.kernel", ["mlp/dense_1/vars/0"], "copy"),
    ("mlp.in_proj.bias", ["mlp/dense_1/vars/1"], "copy"),
    ("mlp.out_proj.kernel", ["mlp/dense_2/vars/0"], "copy"),
    ("mlp.out_proj.bias", ["mlp/dense_2/vars/1"], "copy"),
]

_POOL = "layers/video_prism_atten_token_pooling_layer/"
_PATCH = "layers/video_prism_patching_and_embedding/"
KERAS_HUB_TABLE = [
    ("video_encoder.patch_proj.kernel", [f"{_PATCH}patch_embedding/vars/0"], "copy"),
    ("video_encoder.patch_proj.bias", [f"{_PATCH}patch_embedding/vars/1"], "copy"),
    ("video_encoder.spatial_positions.table", [f"{_PATCH}position_embedding/vars/0"], "positions"),
    (
        "video_encoder.temporal_positions.table",
        ["layers/video_prism_temporal_embedding/embedding/vars/0"],
        "positions",
    ),
    ("video_pooler.query", [f"{_POOL}vars/0"], "copy"),
    ("video_pooler.q_proj.kernel", [f"{_POOL}pooling_attention/query_dense/vars/0"], "heads_in"),
    ("video_pooler.q_proj.bias", [f"{_POOL}pooling_attention/query_dense/vars/1"], "heads_in"),
    (
        "video_pooler.kv_proj.kernel",
        [f"{_POOL}pooling_attention/{n}_dense/vars/0" for n in ("key", "value")],
        "heads_in",
    ),
    (
        "video_pooler.kv_proj.bias",
        [f"{_POOL}pooling_attention/{n}_dense/vars/1" for n in ("key", "value")],
        "heads_in",
    ),
    (
        "video_pooler.per_dim_scale",
        [f"{_POOL}pooling_attention/per_dim_scale_layer/vars/0"],
        "copy",
    ),
    (
        "video_pooler.out_proj.kernel",
        [f"{_POOL}pooling_attention/output_dense/vars/0"],
        "heads_flat",
    ),
    ("video_pooler.out_proj.bias", [f"{_POOL}pooling_attention/output_dense/vars/1"], "copy"),
    ("video_pooler.norm.gamma", [f"{_POOL}layer_norm/vars/0"], "copy"),
    ("video_pooler.norm.beta", [f"{_POOL}layer_norm/vars/1"], "copy"),
    (
        "text_encoder.token_embedding.embeddings",
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


def official_rows(model: keras.Model, enc: str) -> list[Row]:
    """The tables spelled out for this model: rows of (our weight path, [official keys], kind).

    A key "name@i" is layer i of the stacked official tensor "name". Rows come
    grouped by official tensor, so each tensor is read from disk once and dropped.
    """
    rows = [(o, [k.format(enc=enc) for k in ks], kind) for o, ks, kind in WEIGHT_TABLE]
    for stack, official in STACKS.items():
        layer = weight_at(model, stack)
        prefix = official.format(enc=enc)
        for ours, keys, kind in BLOCK_TABLE if layer is not None else []:
            for i in range(layer.num_layers):
                rows.append(
                    (f"{stack}.blocks.{i}.{ours}", [f"{prefix}{k}@{i}" for k in keys], kind)
                )
    return [row for row in rows if weight_at(model, row[0]) is not None]


def weight_at(obj: Any, path: str) -> Any:
    """The weight (or layer) at a dotted path such as "text_encoder.blocks.3.mlp.in_kernel";
    None where the model has no such part (e.g. the text tower of a video-only model)."""
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def keras_hub_encoders(tensors: Iterable[str]) -> list[tuple[str, bool]]:
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


def keras_hub_rows(model: keras.Model, tensors: Mapping[str, np.ndarray]) -> list[Row]:
    """Rows for a keras_hub `model.weights.h5`: its encoders come in the order spatial,
    temporal, then text and auxiliary; the auxiliary one is the only encoder without a
    final LayerNorm."""
    encoders = keras_hub_encoders(tensors)
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
        stack = weight_at(model, ours)
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
    return [row for row in rows if weight_at(model, row[0]) is not None]


def unconvert(kind: str, value: np.ndarray, owner: Any, count: int) -> list[np.ndarray]:
    """The inverse of `convert`: our weight → `count` official tensors."""
    if kind in ("copy", "positions"):
        return [value]
    if kind == "ln_scale":
        return [value - 1.0]
    if kind == "squeeze":
        return [value.reshape(1, 1, -1)]
    heads = owner.num_heads
    if kind == "heads_in":
        parts = np.split(value, count, axis=-1)
        return [p.reshape(*p.shape[:-1], heads, -1) for p in parts]
    if kind == "heads_out":
        return [value.T.reshape(value.shape[1], heads, -1)]
    raise AssertionError(kind)


# Presets saved before the projections became `Projection` layers kept every weight on
# its owner: a Keras weights file stores a layer's own variables as `<layer>/vars/<i>` in
# creation order. Owner (last path component, own variable count) → where each went.
LEGACY_LAYOUT = {
    ("attention", 4): ["qkv_proj/vars/0", "qkv_proj/vars/1", "out_proj/vars/0", "out_proj/vars/1"],
    ("mlp", 4): ["in_proj/vars/0", "in_proj/vars/1", "out_proj/vars/0", "out_proj/vars/1"],
    # query, q kernel, q bias, kv kernel, kv bias, per_dim_scale, out kernel, out bias
    ("pooler", 8): [
        "vars/0",
        "q_proj/vars/0",
        "q_proj/vars/1",
        "kv_proj/vars/0",
        "kv_proj/vars/1",
        "vars/1",
        "out_proj/vars/0",
        "out_proj/vars/1",
    ],
    ("video_encoder", 2): ["patch_proj/vars/0", "patch_proj/vars/1"],
    ("text_encoder", 2): ["token_embedding/vars/0", "vars/0"],  # token table, class token
}


def legacy_renames(names: Iterable[str]) -> dict[str, str]:
    """{old dataset path: new path} for a weights file in the layout before `Projection`
    layers (see `LEGACY_LAYOUT`); {} for a file already in today's layout."""
    owners: dict = {}
    for name in names:
        match = re.fullmatch(r"(.*)/vars/(\d+)", name)
        if match:
            owners.setdefault(match.group(1), []).append(name)
    renames = {}
    for owner, datasets in owners.items():
        last = owner.rsplit("/", 1)[-1]
        kind = next(
            (k for k in ("attention", "mlp", "pooler", "video_encoder", "text_encoder")
             if last == k or last.endswith(f"_{k}") or (k == "pooler" and last.endswith(k))),
            None,
        )  # fmt: skip
        targets = LEGACY_LAYOUT.get((kind, len(datasets)))
        if targets is None:
            continue
        for name in datasets:
            renames[name] = f"{owner}/{targets[int(name.rsplit('/', 1)[1])]}"
    return renames
