"""Old public names keep working for one release, with a warning that names the new one.

The helpers of `videoprism_keras.deprecation` first (no Keras), then what the model
renamed: the layers' `epsilon`/`soft_cap` (`layer_norm_epsilon`/
`attention_logit_soft_cap`, the backbone's keras_hub names), in constructors, attributes
and configs written by the old code (a `.keras` file included), and the export's
`resolution` (`size`).
"""

import ast
import inspect
import json
import warnings
import zipfile

import keras
import numpy as np
import pytest
from helpers import TINY, TINY_LVT, to_numpy

import videoprism_keras as vp
from videoprism_keras import deprecation, export
from videoprism_keras.deprecation import (
    renamed,
    renamed_arguments,
    renamed_attribute,
    renamed_keys,
)
from videoprism_keras.model.pooler import AttentionPooler
from videoprism_keras.model.text_encoder import TextEncoder
from videoprism_keras.model.transformer import (
    LayerNorm,
    SelfAttention,
    TransformerBlock,
    TransformerStack,
)
from videoprism_keras.model.video_encoder import FactorizedVideoEncoder

# What the code before the rename wrote in layer configs → what it writes now.
OLD_KEYS = {"epsilon": "layer_norm_epsilon", "soft_cap": "attention_logit_soft_cap"}


def _message(where, old, new):
    return rf"{where}: `{old}` is deprecated and will be removed in the next release; use `{new}`"


# ------------------------------------------------------------------ the helpers
def test_renamed_moves_the_old_keyword_and_warns_at_the_caller():
    def takes(**kwargs):
        return renamed(kwargs, "resolution", "size", "takes")

    with pytest.warns(DeprecationWarning, match=_message("takes", "resolution", "size")) as got:
        line = inspect.currentframe().f_lineno + 1
        assert takes(resolution=288, other=1) == {"size": 288, "other": 1}
    assert got[0].filename == __file__ and got[0].lineno == line  # the caller's line


def test_renamed_leaves_new_keywords_alone_and_refuses_both():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed({"size": 1}, "resolution", "size", "f") == {"size": 1}
    with pytest.raises(TypeError, match=r"f: `resolution` is the deprecated name of `size`.*"
                       r"Received: resolution=2 and size=1"):  # fmt: skip
        renamed({"size": 1, "resolution": 2}, "resolution", "size", "f")


@renamed_arguments(resolution="size", frames="num_frames")
def _clip(path, num_frames=8, size=None):
    return path, num_frames, size


def test_renamed_arguments_takes_the_old_keywords_with_a_warning():
    with pytest.warns(DeprecationWarning) as got:
        line = inspect.currentframe().f_lineno + 1
        assert _clip("a", frames=4, resolution=288) == ("a", 4, 288)
    messages = sorted(str(w.message) for w in got)
    assert messages == [
        "_clip: `frames` is deprecated and will be removed in the next release; use `num_frames`",
        "_clip: `resolution` is deprecated and will be removed in the next release; use `size`",
    ]
    assert {(w.filename, w.lineno) for w in got} == {(__file__, line)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _clip("a", 4, 288) == _clip("a", num_frames=4, size=288) == ("a", 4, 288)


def test_renamed_arguments_keeps_a_coroutine_function_one():
    import asyncio

    @renamed_arguments(k="top_k")
    async def search(query, top_k=5):
        return query, top_k

    async def caller():
        return await search("q", k=2)

    assert inspect.iscoroutinefunction(search)
    with pytest.warns(DeprecationWarning, match="use `top_k`") as caught:
        assert asyncio.run(caller()) == ("q", 2)
    assert caught[0].filename == __file__  # blames the awaiting code, as a plain call does


def test_renamed_arguments_refuses_both_names_by_keyword_or_position():
    with pytest.raises(TypeError, match="Received: resolution=1 and size=2"):
        _clip("a", size=2, resolution=1)
    with pytest.raises(TypeError, match="Received: resolution=1 and size=2"):
        _clip("a", 8, 2, resolution=1)


def test_renamed_arguments_keeps_the_signature_keras_reads():
    # Keras' Operation.__new__ reads `getfullargspec`, which does not follow __wrapped__.
    assert str(inspect.signature(_clip)) == "(path, num_frames=8, size=None)"
    assert inspect.getfullargspec(_clip).args == ["path", "num_frames", "size"]


def test_renamed_arguments_checks_its_own_use():
    with pytest.raises(TypeError, match="must not be a parameter"):
        renamed_arguments(size="resolution")(_clip.__wrapped__)
    with pytest.raises(TypeError, match="land in"):
        renamed_arguments(resolution="shape")(lambda size=None: size)
    with_kwargs = renamed_arguments(soft_cap="cap")(lambda **kwargs: kwargs)
    with pytest.warns(DeprecationWarning, match="<lambda>: `soft_cap`"):
        assert with_kwargs(soft_cap=5) == {"cap": 5}


def test_renamed_attribute_reads_and_writes_the_new_one():
    class Norm:
        epsilon = renamed_attribute("layer_norm_epsilon")

        def __init__(self):
            self.layer_norm_epsilon = 1e-6

    norm = Norm()
    with pytest.warns(DeprecationWarning, match=_message("Norm", "epsilon", "layer_norm_epsilon")):
        assert norm.epsilon == 1e-6
    with pytest.warns(DeprecationWarning, match="Norm: `epsilon`"):
        norm.epsilon = 1e-3
    assert norm.layer_norm_epsilon == 1e-3
    # Left out of dir(): what walks every attribute (Keras' saving) never reads it.
    assert "epsilon" not in dir(norm) and "layer_norm_epsilon" in dir(norm)


def test_renamed_keys_keep_the_old_key_readable_with_a_warning():
    meta = renamed_keys({"num_frames": 8, "size": (288, 288)}, {"resolution": "size"}, "presets")
    assert set(meta) == {"num_frames", "size", "resolution"}
    assert json.loads(json.dumps(meta))["resolution"] == [288, 288]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert meta["size"] == meta.get("size") == (288, 288)
    for read in (lambda: meta["resolution"], lambda: meta.get("resolution")):
        with pytest.warns(DeprecationWarning, match=_message("presets", "resolution", "size")):
            assert read() == (288, 288)
    with pytest.raises(KeyError, match="size"):
        renamed_keys({"num_frames": 8}, {"resolution": "size"}, "presets")


def test_the_helpers_load_no_keras():
    # Any module may use them, the Keras-free ones (video, tokenizer, constants) included.
    imported = set()
    for node in ast.parse(inspect.getsource(deprecation)).body:
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "functools", "inspect", "warnings", "collections", "typing"}


# ------------------------------------------------------------- the model's layers
NEW = dict(attention_logit_soft_cap=5.0, layer_norm_epsilon=1e-3)
LAYERS = {
    "LayerNorm": lambda: LayerNorm(1e-3),
    "SelfAttention": lambda: SelfAttention(2, attention_logit_soft_cap=5.0),
    "TransformerBlock": lambda: TransformerBlock(2, 8, **NEW),
    "TransformerStack": lambda: TransformerStack(2, num_heads=2, intermediate_dim=8, **NEW),
    "AttentionPooler": lambda: AttentionPooler(2, 8, layer_norm_epsilon=1e-3),
    "TextEncoder": lambda: TextEncoder(50, 1, 16, 2, **NEW),
    "FactorizedVideoEncoder": lambda: FactorizedVideoEncoder(
        4, (4, 4), 4, 3, 16, 32, 2, 1, 1, **NEW
    ),
}


def _old_style(config):
    """A config as the code before the rename wrote it: the old keys, nested ones too."""
    if isinstance(config, dict):
        new_to_old = {new: old for old, new in OLD_KEYS.items()}
        return {new_to_old.get(k, k): _old_style(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_old_style(v) for v in config]
    return config


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_layer_config_with_the_old_keys_builds_the_same_layer(name):
    layer = LAYERS[name]()
    config = layer.get_config()
    assert not set(OLD_KEYS) & set(config)  # the new keys only, like the backbone's
    old = _old_style(config)
    assert set(OLD_KEYS) & set(old)
    with pytest.warns(DeprecationWarning, match=rf"{name}: `(epsilon|soft_cap)` is deprecated"):
        rebuilt = type(layer).from_config(old)
    assert rebuilt.get_config() == config
    with pytest.warns(DeprecationWarning, match=rf"{name}: `(epsilon|soft_cap)` is deprecated"):
        via_keras = keras.saving.deserialize_keras_object(
            _old_style(keras.saving.serialize_keras_object(layer))
        )
    assert type(via_keras) is type(layer) and via_keras.get_config() == config


def test_the_old_keywords_and_attributes_still_work_on_the_layers():
    with pytest.warns(DeprecationWarning) as got:
        block = TransformerBlock(2, 8, soft_cap=5.0, epsilon=1e-3)
    assert sorted(str(w.message).split(" is ")[0] for w in got) == [
        "TransformerBlock: `epsilon`",
        "TransformerBlock: `soft_cap`",
    ]
    assert block.get_config()["attention_logit_soft_cap"] == 5.0
    assert block.get_config()["layer_norm_epsilon"] == 1e-3
    with pytest.warns(DeprecationWarning, match="SelfAttention: `soft_cap`"):
        assert block.attention.soft_cap == 5.0
    with pytest.warns(DeprecationWarning, match="LayerNorm: `epsilon`"):
        assert block.attention_norm.epsilon == 1e-3
    with pytest.raises(TypeError, match="`epsilon` is the deprecated name"):
        LayerNorm(1e-3, epsilon=1e-2)


@pytest.mark.backend
def test_a_keras_file_written_with_the_old_layer_configs_loads(tmp_path):
    inputs = keras.Input((3, 16))
    block = TransformerBlock(2, 32, attention_logit_soft_cap=5.0, layer_norm_epsilon=1e-3)
    pooled = AttentionPooler(2, 8, layer_norm_epsilon=1e-3)(block(inputs))
    model = keras.Model(inputs, pooled)
    new, old = tmp_path / "new.keras", tmp_path / "old.keras"
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        model.save(new)  # reads every attribute of every layer: never the renamed ones
    assert not [w for w in got if "next release" in str(w.message)]
    with zipfile.ZipFile(new) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                data = json.dumps(_old_style(json.loads(data))).encode()
            dst.writestr(item, data)
    with zipfile.ZipFile(old) as saved:
        assert '"epsilon"' in saved.read("config.json").decode()
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(old)
    ours = {str(w.message).split(":")[0] for w in got if "next release" in str(w.message)}
    assert ours == {"TransformerBlock", "AttentionPooler"}  # the two configs, nothing else
    x = np.random.default_rng(0).normal(size=(2, 3, 16)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_the_backbone_builds_its_layers_with_the_new_names():
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        vp.VideoPrismBackbone(**TINY_LVT)
    assert not [w for w in got if "will be removed in the next release" in str(w.message)]


# ------------------------------------------------------------------- export, presets
def test_export_takes_resolution_as_the_old_name_of_size():
    model = vp.VideoPrismBackbone(**TINY)
    with pytest.warns(DeprecationWarning, match=_message("signature_for", "resolution", "size")):
        old = export.signature_for(model, resolution=8)
    (new,) = export.signature_for(model, size=8)
    assert old[0].shape == new.shape == (None, 4, 8, 8, 3)
    with pytest.raises(TypeError, match="Received: resolution=8 and size=12"):
        export.signature_for(model, None, 12, resolution=8)
    with pytest.raises(TypeError, match=r"VideoPrismBackbone\.export: `resolution`"):
        model.export("never_written.onnx", format="onnx", size=8, resolution=8)


def test_preset_descriptions_still_answer_to_resolution():
    meta = vp.VideoPrismBackbone.presets["videoprism_public_v1_large"]
    assert meta["size"] == (288, 288) and meta["num_frames"] == 8
    with pytest.warns(DeprecationWarning, match="`resolution` is deprecated.*use `size`"):
        assert meta["resolution"] == meta["size"]
