"""What must agree across the package: one spelling per idea in the public API, one version."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from helpers import TINY_LVT

import videoprism_keras as vp
from videoprism_keras import constants

ROOT = Path(__file__).resolve().parents[1]
# Old spellings of one idea: the clip's frame size is `size`, the LayerNorm epsilon and the
# attention logit cap carry keras_hub's names (the backbone's constructor arguments), a
# result count is `top_k`, clip times are `start_s`/`end_s`/`duration_s`.
OLD_NAMES = {"resolution", "frame_size", "epsilon", "soft_cap", "k", "start", "end", "starts",
             "ends", "duration", "durations"}  # fmt: skip
# Numeric helpers whose short names are no public vocabulary (`attend`'s `k` is the
# attention's keys), the server's deprecated `k` query parameter, which the dependency
# that reads it must name, and the value of the CLI's `--soft-cap` flag.
INTERNAL = {("transformer", "attend", "soft_cap"), ("transformer", "attend", "k"),
            ("backbone", "l2_normalize", "epsilon"), ("dependencies", "top_k", "k"),
            ("models", "ModelOptions", "soft_cap")}  # fmt: skip
# Every module of the package, so that a new one is held to the vocabulary too.
MODULES = sorted(
    ".".join(path.relative_to(ROOT / "src" / "videoprism_keras").with_suffix("").parts)
    for path in (ROOT / "src" / "videoprism_keras").rglob("*.py")
    if path.stem not in ("__init__", "__main__")
)


def _public_callables(module):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            yield name, obj.__init__
            for method, fn in vars(obj).items():
                fn = getattr(fn, "__func__", fn)  # classmethods, staticmethods
                if not method.startswith("_") and inspect.isfunction(fn):
                    yield f"{name}.{method}", fn


@pytest.mark.parametrize("module", MODULES)
def test_public_signatures_use_the_one_vocabulary(module):
    mod = importlib.import_module(f"videoprism_keras.{module}")
    short = module.rsplit(".", 1)[-1]
    found = [
        f"{name}({param})"
        for name, fn in _public_callables(mod)
        for param in inspect.signature(fn).parameters
        if param in OLD_NAMES and (short, name, param) not in INTERNAL
    ]
    assert found == []


def test_every_layer_config_spells_what_the_backbone_spells():
    model = vp.VideoPrismBackbone(**TINY_LVT)
    keys = {
        key
        for layer in model._flatten_layers(include_self=False)
        for key in layer.get_config()
        if type(layer).__module__.startswith("videoprism_keras")
    }
    assert {"layer_norm_epsilon", "attention_logit_soft_cap"} <= keys
    assert not keys & OLD_NAMES
    for meta in vp.VideoPrismBackbone.presets.values():
        assert meta["size"] == (288, 288)


def test_the_version_has_one_source():
    setuptools_config = pytest.importorskip("setuptools.config.pyprojecttoml")
    raw = setuptools_config.read_configuration(ROOT / "pyproject.toml", expand=False)
    assert "version" not in raw["project"] and raw["project"]["dynamic"] == ["version"]
    dynamic = raw["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "videoprism_keras.constants.VERSION"}
    # A literal, so that setuptools reads it without importing the package (and Keras).
    tree = ast.parse(inspect.getsource(constants))
    literals = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["VERSION"]
        and isinstance(node.value, ast.Constant)
    ]
    assert literals == [constants.VERSION] == [vp.__version__]
    built = setuptools_config.read_configuration(ROOT / "pyproject.toml", expand=True)
    assert built["project"]["version"] == vp.__version__
