"""Files ↔ models: official Flax checkpoints, keras_hub presets and our preset directories.

Everything that reads or writes model weights lives here; `hub` only finds and fetches
the files, and `weight_tables` says which tensor becomes which weight. Nothing here
imports the model classes: each loader is given the class to build (the backbone's
`from_preset` passes itself), so the model never depends on this module in a loop.

A built-in preset name downloads Google's official checkpoint, converts it once, and
keeps the result as a preset directory of ours in the cache (`hub.cached`: built in a
temporary folder and renamed into place under a file lock).
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import hub
from .constants import (
    CONFIG_FILE,
    DEFAULT_SOFT_CAP,
    METADATA_FILE,
    TOKENIZER_ASSET,
    VERSION,
    WEIGHTS_FILE,
)
from .deprecation import renamed_arguments
from .model.embeddings import PositionTable, resize_positions
from .model.init import skip_initialization
from .model.inputs import standardize_data_format
from .model.quantization import rebase
from .presets import PRESET_CONFIGS, PRESET_FILES
from .weight_tables import (
    ATTENTION,
    STACKS,
    Row,
    convert,
    keras_hub_encoders,
    keras_hub_rows,
    legacy_renames,
    official_rows,
    pooler_table,
    unconvert,
    weight_at,
)

if TYPE_CHECKING:
    import keras

# What a checkpoint may be given as: a file, or a mapping of its tensors.
PathOrMapping = str | os.PathLike | Mapping


# ----------------------------------------------------------------- reading
def read_checkpoint(path_or_mapping: PathOrMapping) -> Mapping[str, np.ndarray]:
    """A lazy mapping of official keys (without `params/`) to arrays.

    Args:
        path_or_mapping: str, path or mapping. An official `.npz`, or a mapping of its
            keys (flat, or nested like Flax variables).
    """
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
        _, _, num_heads, _ = ckpt[f"{spatial}{ATTENTION}query/w"].shape
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


def backbone_config(
    ckpt: Mapping[str, np.ndarray],
    attention_logit_soft_cap: float | None = DEFAULT_SOFT_CAP,
    **overrides: Any,
) -> dict:
    """`VideoPrismBackbone` arguments: the checkpoint's, then the overrides.

    The inferred `image_shape` is (H, W, C); with `data_format="channels_first"`
    it is given as (C, H, W), the order that data format reads it in.

    Args:
        ckpt: mapping. The checkpoint's tensors (`read_checkpoint`).
        attention_logit_soft_cap: float or None. Not stored in checkpoints.
            Defaults to `constants.DEFAULT_SOFT_CAP` (50, every release's).
        **overrides: any other backbone argument.
    """
    config = {**infer_config(ckpt), "attention_logit_soft_cap": attention_logit_soft_cap}
    config.update(overrides)
    channels_first = standardize_data_format(config.get("data_format")) == "channels_first"
    if channels_first and "image_shape" not in overrides:
        height, width, channels = config["image_shape"]
        config["image_shape"] = (channels, height, width)
    return config


# ------------------------------------------------------------------- loading
def assign_weights(
    model: keras.Model,
    rows: Sequence[Row],
    tensors: Mapping[str, np.ndarray],
    source: str = "checkpoint",
) -> None:
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
        variable = weight_at(model, ours)
        grid = weight_at(model, ours.rsplit(".", 1)[0]).grid if kind == "positions" else None
        try:
            value = convert(kind, arrays, grid)
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


def load_official(
    cls: type[keras.Model],
    path_or_mapping: PathOrMapping,
    attention_logit_soft_cap: float | None = DEFAULT_SOFT_CAP,
    **overrides: Any,
) -> keras.Model:
    """A `cls` (the backbone) built from an official checkpoint; see `load_flax_checkpoint`."""
    source = (
        "checkpoint" if isinstance(path_or_mapping, Mapping) else repr(os.fspath(path_or_mapping))
    )
    ckpt = read_checkpoint(path_or_mapping)
    config = backbone_config(ckpt, attention_logit_soft_cap, **overrides)
    with skip_initialization():  # every weight is overwritten below
        model = cls(**config)
    assign_weights(model, official_rows(model, _vision_prefix(ckpt.keys())), ckpt, source)
    return model


@renamed_arguments(soft_cap="attention_logit_soft_cap")
def load_official_classifier(
    cls: type[keras.Model],
    backbone_cls: type[keras.Model],
    path_or_mapping: PathOrMapping,
    attention_logit_soft_cap: float | None,
    **kwargs: Any,
) -> keras.Model:
    """A `cls` (the classifier) from the official `FactorizedVideoClassifier` checkpoint
    (`encoder/`, `atten_pooler/`, `projection/`), its configuration read off the shapes.

    Args:
        cls: the classifier class, called as `cls(backbone, num_classes, **kwargs)`.
        backbone_cls: the backbone class.
        path_or_mapping: str, path or mapping. The checkpoint.
        attention_logit_soft_cap: float or None. Not stored in checkpoints.
        **kwargs: other classifier arguments.
    """
    ckpt = read_checkpoint(path_or_mapping)
    if "projection/linear/kernel" not in ckpt:
        raise ValueError("not an official classifier checkpoint: no projection/linear/kernel")
    num_classes = int(ckpt["projection/linear/kernel"].shape[-1])
    with skip_initialization():
        backbone = backbone_cls(
            **infer_config(ckpt), attention_logit_soft_cap=attention_logit_soft_cap
        )
    model = cls(backbone, num_classes, **kwargs)
    rows = [(f"backbone.{o}", keys, kind) for o, keys, kind in official_rows(backbone, "encoder/")]
    rows += pooler_table("pooler", "atten_pooler/")
    rows += [
        ("head.kernel", ["projection/linear/kernel"], "copy"),
        ("head.bias", ["projection/linear/bias"], "copy"),
    ]
    source = "checkpoint" if isinstance(path_or_mapping, Mapping) else repr(str(path_or_mapping))
    assign_weights(model, rows, ckpt, source)
    return model


def load_saved_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.load_weights(path)`, for our weights files of any version: one written
    before the projections were layers of their own is read through a renamed copy."""
    import h5py

    with h5py.File(path, "r") as f:
        names = []
        f.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
    renames = legacy_renames(names)
    if not renames:
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        upgraded = Path(tmp) / WEIGHTS_FILE
        shutil.copyfile(path, upgraded)
        with h5py.File(upgraded, "r+") as f:
            # Through temporary names: a new path may be another dataset's old one.
            for i, old in enumerate(renames):
                f.move(old, f"legacy_{i}")
            for i, new in enumerate(renames.values()):
                f.require_group(new.rsplit("/", 1)[0])
                f.move(f"legacy_{i}", new)
        model.load_weights(upgraded)


def read_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every dataset of a Keras `.weights.h5` file, by its path."""
    import h5py  # Keras' own dependency; only keras_hub presets need it here

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


def load_keras_hub_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads keras_hub's `model.weights.h5` into our `model` (built from the same config)."""
    tensors = read_h5(path)
    rows = keras_hub_rows(model, tensors)
    text = [name for name, has_norm in keras_hub_encoders(tensors) if has_norm][2:3]
    for name in text:  # keras_hub's extra text LayerNorm: checked to be the identity, then skipped
        gamma, beta = (tensors.pop(f"layers/{name}/layer_norm/vars/{i}", None) for i in (0, 1))
        if gamma is not None and not (np.allclose(gamma, 1) and np.allclose(beta, 0)):
            raise ValueError(
                f"{str(path)!r}: keras_hub's extra text-encoder LayerNorm has trained weights, "
                "which the official architecture (and ours) does not have"
            )
    assign_weights(model, rows, tensors, repr(str(path)))


# ------------------------------------------------------------------ export
def export_flax_checkpoint(
    model: keras.Model, path: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Our weights in the official release layout: see `checkpoint.export_flax_checkpoint`."""
    import keras

    quantized = [layer.path for layer in model._flatten_layers() if layer.quantization_mode]
    if quantized:
        raise ValueError(
            "the official format holds float weights; export the model before quantize(). "
            f"Received: a model with quantized layers ({quantized[0]}, ...)"
        )
    enc = "vision_encoder/" if model.is_multimodal else ""
    layers: dict[str, dict[int, np.ndarray]] = {}
    for ours, keys, kind in official_rows(model, enc):
        value = keras.ops.convert_to_numpy(keras.ops.cast(weight_at(model, ours), "float32"))
        owner = _heads_owner(model, ours)
        for key, array in zip(keys, unconvert(kind, value, owner, len(keys)), strict=True):
            name, _, index = key.partition("@")
            layers.setdefault(name, {})[int(index) if index else -1] = array
    flat = {
        f"params/{name}": parts[-1] if -1 in parts else np.stack([parts[i] for i in sorted(parts)])
        for name, parts in layers.items()
    }
    if path is not None:
        np.savez(path, **flat)
    return flat


# ------------------------------------------------------------------ .keras files
def check_keras_file(filepath: str | os.PathLike) -> None:
    """Our models save as `.keras` only: Keras' legacy `.h5` writes them but cannot read
    them back (it rebuilds only built-in layers), so it is refused before writing."""
    if not str(filepath).endswith(".keras"):
        raise ValueError(
            "VideoPrism models are saved as .keras files (or with save_to_preset); Keras' "
            f"legacy formats cannot load them back. Received: filepath={str(filepath)!r}"
        )


def _heads_owner(model: keras.Model, path: str) -> Any:
    """The innermost layer along `path` that knows its head count (an attention or a
    pooler): what `unconvert` splits a fused projection's heads by."""
    owner, obj = None, model
    for part in path.split(".")[:-1]:
        obj = weight_at(obj, part)
        owner = obj if hasattr(obj, "num_heads") else owner
    return owner


# ----------------------------------------------------------- preset directories
def _convert_official(cls: type[keras.Model], name: str, out: Path) -> None:
    """Writes built-in preset `name` into `out`: Google's checkpoint, converted."""
    npz = hub.official_checkpoint(name)
    model = load_official(cls, npz, PRESET_CONFIGS[name]["attention_logit_soft_cap"])
    tokenizer = None
    if model.is_multimodal:
        try:
            tokenizer = hub.fetch_tokenizer()
        except hub.PresetUnavailableError as err:  # the weights are still worth caching
            warnings.warn(f"{name}: converted without its tokenizer: {err}", stacklevel=2)
    repo, filename = PRESET_FILES[name]
    save_backbone(model, out, source=f"hf://{repo}/{filename}", tokenizer_file=tokenizer)
    del model
    gc.collect()  # free it before the caller loads the cached copy: peak stays ~1x the model


# ------------------------------------------------------------- load / save
def save_backbone(
    model: keras.Model,
    preset_dir: str | os.PathLike,
    source: str | None = None,
    tokenizer_file: str | os.PathLike | None = None,
) -> None:
    """Config, weights, metadata and the tokenizer asset, in keras_hub's layout.

    Args:
        model: `keras.Model`. The backbone.
        preset_dir: str or path. The directory, made if missing.
        source: str or None. Where the weights came from, for the metadata. Defaults
            to `None`: the model's `preset_source`, if any.
        tokenizer_file: str, path or None. The SentencePiece model to include.
            Defaults to `None`: the model's `tokenizer_file`, if any.
    """
    import keras

    out = Path(preset_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "module": "videoprism_keras",
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "registered_name": f"videoprism_keras>{type(model).__name__}",
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    model.save_weights(out / WEIGHTS_FILE)
    metadata = {
        "videoprism_keras_version": VERSION,
        "keras_version": keras.__version__,
        "parameter_count": model.count_params(),
        "date_saved": datetime.datetime.now().isoformat(timespec="seconds"),
        "source": source or getattr(model, "preset_source", None),
    }
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    tokenizer_file = tokenizer_file or getattr(model, "tokenizer_file", None)
    if tokenizer_file:
        (out / TOKENIZER_ASSET).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer_file, out / TOKENIZER_ASSET)


def _read_config(directory: Path) -> tuple[dict, bool]:
    """The backbone arguments in a preset directory, and whether keras_hub wrote it."""
    try:
        saved = json.loads((directory / CONFIG_FILE).read_text())
        config = dict(saved["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{directory / CONFIG_FILE} is not a VideoPrism preset config: {err}"
        ) from err
    from_keras_hub = "keras_hub" in str(saved.get("registered_name", "")) + str(
        saved.get("module", "")
    )
    if from_keras_hub and "VideoPrism" not in str(saved.get("class_name", "")):
        raise ValueError(f"{directory} holds a keras_hub {saved.get('class_name')}, not VideoPrism")
    for key in ("name", "trainable"):
        config.pop(key, None)
    dtype = config.pop("dtype", None)
    if isinstance(dtype, dict):  # a serialised DTypePolicy, or a map of quantized layers
        import keras

        dtype = keras.dtype_policies.get(dtype)
    if dtype:
        config["dtype"] = dtype
    return config, from_keras_hub


def load_backbone(
    cls: type[keras.Model],
    preset: str | os.PathLike,
    load_weights: bool = True,
    **overrides: Any,
) -> keras.Model:
    """A `cls` from any preset spec (see `VideoPrismBackbone.from_preset`)."""
    name = os.fspath(preset)
    if not load_weights and name in PRESET_CONFIGS:  # architecture only: no download at all
        return cls(**{**PRESET_CONFIGS[name], **overrides})
    if name in PRESET_FILES and not Path(name).exists():
        source = hub.cached(hub.cache_root() / name, lambda tmp: _convert_official(cls, name, tmp))
    else:
        source = hub.resolve(preset, config_only=not load_weights)
    if source.is_file():  # an official .npz checkpoint
        if not load_weights:
            return cls(**backbone_config(read_checkpoint(source), **overrides))
        return load_official(cls, source, **overrides)
    if not (source / CONFIG_FILE).is_file():
        raise ValueError(f"{source} is not a preset directory: it has no {CONFIG_FILE}")
    config, from_keras_hub = _read_config(source)
    if "dtype" in overrides:  # a quantized preset keeps its quantized layers in any dtype
        overrides = {**overrides, "dtype": rebase(config.get("dtype"), overrides["dtype"])}
    if not load_weights:
        model = cls(**{**config, **overrides})
    else:
        # Weights load at the saved shapes; new frame counts or frame sizes come after.
        reshaping = {k: overrides[k] for k in ("num_frames", "image_shape") if k in overrides}
        with skip_initialization():
            model = cls(**{**config, **{k: v for k, v in overrides.items() if k not in reshaping}})
        weights = source / WEIGHTS_FILE
        if not weights.is_file():
            raise hub.PresetUnavailableError(f"{source} has no {WEIGHTS_FILE}")
        try:
            if from_keras_hub:
                load_keras_hub_weights(model, weights)
            else:
                load_saved_weights(model, weights)
        except (OSError, KeyError) as err:
            hint = ""
            if hub.cache_root().resolve() in source.resolve().parents:
                hint = f"; delete {source} and the next call converts it again"
            raise ValueError(f"{weights} is unreadable or incomplete: {err}{hint}") from err
        if reshaping:
            model = _resized(cls, model, reshaping)
            gc.collect()  # the model at the saved shapes: Keras layers hold reference cycles
    model.preset_source = name
    tokenizer = source / TOKENIZER_ASSET
    model.tokenizer_file = str(tokenizer) if tokenizer.is_file() else None
    return model


def _resized(cls: type[keras.Model], model: keras.Model, reshaping: dict) -> keras.Model:
    """A copy of `model` for other frame counts or frame sizes; position tables resized."""
    import keras

    with skip_initialization():
        new = cls(**{**model.get_config(), **reshaping})
    old_tables, new_tables = _position_tables(model), _position_tables(new)
    for old_var, new_var in zip(model.weights, new.weights, strict=True):
        value = keras.ops.convert_to_numpy(old_var)
        if tuple(old_var.shape) != tuple(new_var.shape):
            if id(old_var) not in old_tables:
                raise ValueError(f"weight {old_var.path} changes shape; only position tables can")
            source, target = old_tables[id(old_var)].grid, new_tables[id(new_var)].grid
            value = resize_positions(value, source, target)
        new_var.assign(value)
    return new


def _position_tables(model: keras.Model) -> dict:
    """Every `PositionTable` layer of `model`, by the id of its table variable."""
    return {
        id(layer.table): layer
        for layer in model._flatten_layers()
        if isinstance(layer, PositionTable)
    }
