"""Loading Google's official Flax checkpoints (`flax_*_repeated.npz`).

The release is an `np.savez` of flat `params/...` keys. Transformer stacks were
saved with `scan=True`, so each stack stores every layer's tensor stacked on a
leading axis under `.../x_layers/...`. `WEIGHT_TABLE` below is the one place that
says which official tensor becomes which of our weights, and how.
"""

import math
import os
import zipfile
from collections.abc import Mapping

import numpy as np

from .model.embeddings import grid_resize_matrix

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
_ATTN = "self_attention/"
BLOCK_TABLE = [
    ("attention_norm.gamma", ["layer_norm/scale"], "ln_scale"),
    ("attention_norm.beta", ["layer_norm/bias"], "copy"),
    ("attention.qkv_kernel", [f"{_ATTN}{n}/w" for n in ("query", "key", "value")], "heads_in"),
    ("attention.qkv_bias", [f"{_ATTN}{n}/b" for n in ("query", "key", "value")], "heads_in"),
    ("attention.out_kernel", [f"{_ATTN}post/w"], "heads_out"),
    ("attention.out_bias", [f"{_ATTN}post/b"], "copy"),
    ("mlp_norm.gamma", ["ff_layer/layer_norm/scale"], "ln_scale"),
    ("mlp_norm.beta", ["ff_layer/layer_norm/bias"], "copy"),
    ("mlp.in_kernel", ["ff_layer/ffn_layer1/linear/kernel"], "copy"),
    ("mlp.in_bias", ["ff_layer/ffn_layer1/linear/bias"], "copy"),
    ("mlp.out_kernel", ["ff_layer/ffn_layer2/linear/kernel"], "copy"),
    ("mlp.out_bias", ["ff_layer/ffn_layer2/linear/bias"], "copy"),
]


def pooler_table(ours: str, official: str) -> list:
    """The attention pooler's weights; shared by the LvT model and the classifier."""
    att = f"{official}pooling_attention/"
    return [
        (f"{ours}.query", [f"{official}pooling_attention_query"], "copy"),
        (f"{ours}.q_kernel", [f"{att}query/w"], "heads_in"),
        (f"{ours}.q_bias", [f"{att}query/b"], "heads_in"),
        (f"{ours}.kv_kernel", [f"{att}key/w", f"{att}value/w"], "heads_in"),
        (f"{ours}.kv_bias", [f"{att}key/b", f"{att}value/b"], "heads_in"),
        (f"{ours}.per_dim_scale", [f"{att}per_dim_scale/per_dim_scale"], "copy"),
        (f"{ours}.out_kernel", [f"{att}post/w"], "heads_out"),
        (f"{ours}.out_bias", [f"{att}post/b"], "copy"),
        (f"{ours}.norm.gamma", [f"{official}pooling_attention_layer_norm/scale"], "ln_scale"),
        (f"{ours}.norm.beta", [f"{official}pooling_attention_layer_norm/bias"], "copy"),
    ]


WEIGHT_TABLE = [
    ("video_encoder.patch_kernel", ["{enc}patch_projection/linear/kernel"], "copy"),
    ("video_encoder.patch_bias", ["{enc}patch_projection/linear/bias"], "copy"),
    ("video_encoder.spatial_positions.table", ["{enc}spatial_pos_emb/emb_var"], "positions"),
    ("video_encoder.spatial_norm.gamma", ["{enc}spatial_ln/scale"], "ln_scale"),
    ("video_encoder.spatial_norm.beta", ["{enc}spatial_ln/bias"], "copy"),
    ("video_encoder.temporal_positions.table", ["{enc}temporal_pos_emb/emb_var"], "positions"),
    ("video_encoder.temporal_norm.gamma", ["{enc}temporal_ln/scale"], "ln_scale"),
    ("video_encoder.temporal_norm.beta", ["{enc}temporal_ln/bias"], "copy"),
    *pooler_table("video_pooler", "contrastive_vision_pooler/"),
    ("text_encoder.token_embedding", ["text_encoder/token_emb/emb_var"], "copy"),
    ("text_encoder.class_token", ["text_encoder/cls_emb"], "squeeze"),
    ("text_encoder.norm.gamma", ["text_encoder/unimodal_ln/scale"], "ln_scale"),
    ("text_encoder.norm.beta", ["text_encoder/unimodal_ln/bias"], "copy"),
]


def _convert(kind, arrays, target_grid=None):
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
        if source_grid == tuple(target_grid):
            return table
        return grid_resize_matrix(source_grid, target_grid) @ table
    raise AssertionError(kind)


# ----------------------------------------------------------------- reading
def read_checkpoint(path_or_mapping) -> Mapping:
    """Returns a lazy mapping of official keys (without `params/`) to arrays."""
    if isinstance(path_or_mapping, Mapping):
        flat = _flatten(path_or_mapping)
        return {k.removeprefix("params/"): np.asarray(v) for k, v in flat.items()}
    path = os.fspath(path_or_mapping)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist or is not a file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(
            f"checkpoint {path!r} is not a readable .npz archive (truncated or corrupt?): {err}"
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"checkpoint {path!r} holds a single array, not an .npz of named tensors")
    return _NpzView(archive, path)


class _NpzView(Mapping):
    """Reads one tensor at a time from the archive, so loading never holds the whole file."""

    def __init__(self, archive, path):
        self.archive, self.path = archive, path
        self.keys_ = {k.removeprefix("params/"): k for k in archive.files}

    def __getitem__(self, key):
        try:
            return self.archive[self.keys_[key]]
        except KeyError:
            raise
        except Exception as err:  # zlib/zip/format errors inside a damaged archive
            raise ValueError(
                f"checkpoint {self.path!r}: tensor {key!r} is unreadable: {err}"
            ) from err

    def __iter__(self):
        return iter(self.keys_)

    def __len__(self):
        return len(self.keys_)


def _flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# ------------------------------------------------------------------ config
def _vision_prefix(keys) -> str:
    for prefix in ("vision_encoder/", "encoder/"):
        if any(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def _num_layers(ckpt, stack_prefix) -> int:
    key = f"{stack_prefix}ff_layer/ffn_layer1/linear/kernel"
    return int(ckpt[key].shape[0]) if key in ckpt else 0


def infer_config(ckpt: Mapping) -> dict:
    """Every `VideoPrismBackbone` argument that the tensor shapes determine."""
    enc = _vision_prefix(ckpt.keys())
    try:
        patch_dim, hidden_dim = ckpt[f"{enc}patch_projection/linear/kernel"].shape
        grid_len = ckpt[f"{enc}spatial_pos_emb/emb_var"].shape[0]
        num_frames = ckpt[f"{enc}temporal_pos_emb/emb_var"].shape[0]
        spatial = STACKS["video_encoder.spatial_encoder"].format(enc=enc)
        _, _, num_heads, _ = ckpt[f"{spatial}{_ATTN}query/w"].shape
        intermediate_dim = ckpt[f"{spatial}ff_layer/ffn_layer1/linear/kernel"].shape[-1]
    except KeyError as err:
        raise ValueError(
            f"not an official VideoPrism checkpoint: tensor {err.args[0]!r} is missing"
        ) from None
    patch_size = math.isqrt(patch_dim // 3)
    side = math.isqrt(grid_len)
    if patch_size * patch_size * 3 != patch_dim or side * side != grid_len:
        raise ValueError(
            f"cannot infer the patch size or the square position grid from patch_projection "
            f"{patch_dim} inputs and a {grid_len}-entry spatial table"
        )
    text = STACKS["text_encoder.transformer"]
    vocab = ckpt.get("text_encoder/token_emb/emb_var", np.zeros((0,))).shape[0]
    return dict(
        num_frames=int(num_frames),
        patch_size=patch_size,
        hidden_dim=int(hidden_dim),
        intermediate_dim=int(intermediate_dim),
        num_heads=int(num_heads),
        num_spatial_layers=_num_layers(ckpt, spatial),
        num_temporal_layers=_num_layers(
            ckpt, STACKS["video_encoder.temporal_encoder"].format(enc=enc)
        ),
        num_auxiliary_layers=_num_layers(ckpt, STACKS["auxiliary_encoder"]),
        vocabulary_size=int(vocab),
        num_text_layers=_num_layers(ckpt, text),
        image_shape=(side * patch_size, side * patch_size, 3),
    )


def backbone_config(ckpt: Mapping, attention_logit_soft_cap=50.0, **overrides) -> dict:
    """`VideoPrismBackbone` arguments: the checkpoint's, then the overrides.

    The inferred `image_shape` is (H, W, C); with `data_format="channels_first"`
    it is given as (C, H, W), the order that data format reads it in.
    """
    from .model.backbone import standardize_data_format

    config = {**infer_config(ckpt), "attention_logit_soft_cap": attention_logit_soft_cap}
    config.update(overrides)
    channels_first = standardize_data_format(config.get("data_format")) == "channels_first"
    if channels_first and "image_shape" not in overrides:
        height, width, channels = config["image_shape"]
        config["image_shape"] = (channels, height, width)
    return config


# ------------------------------------------------------------------- loading
def expand_table(model, enc: str) -> list:
    """The tables spelled out for this model: rows of (our weight path, [official keys], kind).

    A key "name@i" is layer i of the stacked official tensor "name". Rows come
    grouped by official tensor, so each tensor is read from disk once and dropped.
    """
    rows = [(o, [k.format(enc=enc) for k in ks], kind) for o, ks, kind in WEIGHT_TABLE]
    for stack, official in STACKS.items():
        layer = _resolve(model, stack)
        prefix = official.format(enc=enc)
        for ours, keys, kind in BLOCK_TABLE if layer is not None else []:
            for i in range(layer.num_layers):
                rows.append(
                    (f"{stack}.blocks.{i}.{ours}", [f"{prefix}{k}@{i}" for k in keys], kind)
                )
    return [row for row in rows if _resolve(model, row[0]) is not None]


def _resolve(obj, path):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def assign_weights(model, rows, tensors: Mapping, source: str = "checkpoint") -> None:
    """Copies `tensors` into `model` following `rows` of (our weight, [keys], conversion).

    A key "name@i" is layer i of the stacked tensor "name". Every problem is
    collected and reported at once: missing, unused and mis-shaped tensors, by name.
    """
    missing, mismatched, used = [], [], set()
    current: dict = {}  # the (stacked) tensors of the row group being copied
    for ours, keys, kind in rows:
        names = [k.partition("@")[0] for k in keys]
        if not set(names) <= set(current):
            current = {n: tensors[n] for n in names if n in tensors}
        absent = [n for n in names if n not in current]
        if absent:
            missing.extend(n for n in absent if n not in missing)
            continue
        used.update(names)
        arrays = [
            current[n][int(i)] if i else current[n] for n, _, i in (k.partition("@") for k in keys)
        ]
        variable = _resolve(model, ours)
        grid = _resolve(model, ours.rsplit(".", 1)[0]).grid if kind == "positions" else None
        try:
            value = _convert(kind, arrays, grid)
        except ValueError as err:  # a reshape that cannot work: the shapes disagree
            mismatched.append(f"{', '.join(names)} {[a.shape for a in arrays]} → {ours}: {err}")
            continue
        if tuple(value.shape) != tuple(variable.shape):
            shapes = ", ".join(str(a.shape) for a in arrays)
            mismatched.append(f"{', '.join(names)} {shapes} → {ours} {tuple(variable.shape)}")
            continue
        variable.assign(np.asarray(value, dtype=np.float32))
    unexpected = sorted(set(tensors.keys()) - used)
    problems = [
        f"missing tensors: {missing}" if missing else "",
        f"unexpected tensors: {unexpected}" if unexpected else "",
        f"mis-shaped tensors: {mismatched}" if mismatched else "",
    ]
    if any(problems):
        details = "; ".join(p for p in problems if p)
        raise ValueError(f"{source} does not match the model: {details}"[:4000])


def load_flax_checkpoint(path_or_mapping, attention_logit_soft_cap=50.0, **overrides):
    """Builds a `VideoPrismBackbone` from an official VideoPrism checkpoint.

    Args:
        path_or_mapping: an official `.npz` (e.g. `flax_lvt_base_f16r288_repeated.npz`),
            or a mapping of its `params/...` keys (flat, or nested like Flax variables).
        attention_logit_soft_cap: not stored in checkpoints; every release uses 50.
        **overrides: any other `VideoPrismBackbone` argument. `num_frames` or
            `image_shape` other than the checkpoint's resize its position tables.

    Everything else (layer counts, widths, heads, patch size, position grids,
    vocabulary) is read off the tensor shapes.
    """
    from .model.backbone import VideoPrismBackbone
    from .model.init import skip_initialization

    source = (
        "checkpoint" if isinstance(path_or_mapping, Mapping) else repr(os.fspath(path_or_mapping))
    )
    ckpt = read_checkpoint(path_or_mapping)
    config = backbone_config(ckpt, attention_logit_soft_cap, **overrides)
    with skip_initialization():  # every weight is overwritten below
        model = VideoPrismBackbone(**config)
    assign_weights(model, expand_table(model, _vision_prefix(ckpt.keys())), ckpt, source)
    return model


# ------------------------------------------------------------------ export
def _unconvert(kind, value, owner, count):
    """The inverse of `_convert`: our weight → `count` official tensors."""
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


def export_flax_checkpoint(model, path=None) -> dict:
    """Our weights in the official release layout (`params/...`, stacks on axis 0).

    Returns the flat dict, and writes it with `np.savez` when `path` is given, so
    the official Flax code (or `load_flax_checkpoint`) can read it back.
    """
    import keras

    enc = "vision_encoder/" if model.is_multimodal else ""
    layers: dict[str, dict[int, np.ndarray]] = {}
    for ours, keys, kind in expand_table(model, enc):
        value = keras.ops.convert_to_numpy(keras.ops.cast(_resolve(model, ours), "float32"))
        owner = _resolve(model, ours.rsplit(".", 1)[0])
        for key, array in zip(keys, _unconvert(kind, value, owner, len(keys)), strict=True):
            name, _, index = key.partition("@")
            layers.setdefault(name, {})[int(index) if index else -1] = array
    flat = {
        f"params/{name}": parts[-1] if -1 in parts else np.stack([parts[i] for i in sorted(parts)])
        for name, parts in layers.items()
    }
    if path is not None:
        np.savez(path, **flat)
    return flat
