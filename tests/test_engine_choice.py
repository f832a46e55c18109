"""Which engine runs a precision (`engine.choose_engine`), and every refusal of `Encoder`'s
engine arguments, before any work: names, what is installed, the backend, the model."""

import importlib.util
import sys
import warnings

import keras
import numpy as np
import pytest

import videoprism_keras as vp
from videoprism_keras import extras
from videoprism_keras.constants import ENGINE_PREFERENCE
from videoprism_keras.engine import choose_engine
from videoprism_keras.runtime import Encoder

FAST = ("openvino", "nncf", "onnxruntime")


@pytest.fixture()
def without(monkeypatch):
    """`without("openvino", ...)`: those modules read as not installed (find_spec)."""
    real = importlib.util.find_spec

    def hide(*modules):
        def find_spec(name, *args, **kwargs):
            return None if name.split(".")[0] in modules else real(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        for name in modules:  # imported by an earlier test: out of sight for this one
            monkeypatch.delitem(sys.modules, name, raising=False)

    return hide


@pytest.fixture(scope="module")
def small(golden_dir):
    return vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                             attention_logit_soft_cap=5.0)  # fmt: skip


# ------------------------------------------------------------------ choose_engine
@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_auto_takes_the_first_installed_engine_of_each_precision(backend):
    engine, reason = choose_engine("auto", "float32", backend)
    assert engine == "openvino" and "auto's first choice for float32" in reason
    assert choose_engine("auto", "bfloat16", backend)[0] == "openvino"
    engine, reason = choose_engine("auto", "int8", backend)
    assert engine == "openvino" and "OpenVINO" in reason
    assert ENGINE_PREFERENCE["int8"][0] == "openvino"


@pytest.mark.parametrize(
    ("backend", "hidden", "precision", "expected"),
    [
        ("jax", ("openvino",), "int8", "onnxruntime"),
        ("jax", ("nncf",), "int8", "onnxruntime"),  # OpenVINO's int8 needs NNCF
        ("jax", ("openvino", "onnxruntime"), "int8", "keras"),  # Keras int8 is fine on JAX
        ("tensorflow", ("openvino",), "int8", "onnxruntime"),
        ("torch", ("nncf",), "bfloat16", "openvino"),  # bfloat16 needs no NNCF
        ("jax", ("openvino",), "bfloat16", "keras"),
        ("jax", ("openvino",), "float32", "keras"),  # never ONNX Runtime: slower than Keras
        ("torch", ("nncf",), "float32", "openvino"),
        ("tensorflow", ("jax2onnx",), "float32", "keras"),
        ("torch", ("openvino",), "bfloat16", "keras"),
        ("jax", ("jax2onnx",), "int8", "keras"),  # no exporter from JAX: no engine
        ("tensorflow", ("jax2onnx",), "bfloat16", "keras"),  # routed through JAX
    ],
)
def test_auto_falls_back_by_what_is_installed(without, backend, hidden, precision, expected):
    without(*hidden)
    engine, reason = choose_engine("auto", precision, backend)
    assert engine == expected
    if expected != ENGINE_PREFERENCE[precision][0]:
        assert "not installed" in reason  # says why the first choice was passed over


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_int8_without_an_engine_falls_back_to_keras_saying_why(without, backend):
    without(*FAST)
    engine, reason = choose_engine("auto", "int8", backend)
    assert engine == "keras" and "OpenVINO: " in reason and "not installed" in reason


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_keras_runs_every_precision_on_every_backend(backend):
    for precision in ("float32", "bfloat16", "int8"):
        assert choose_engine("keras", precision, backend)[0] == "keras"


def test_a_named_engine_that_is_missing_names_its_extra(without):
    without("openvino")
    with pytest.raises(extras.MissingExtra, match=r"needs openvino.*videoprism-keras\[openvino\]"):
        choose_engine("openvino", "float32", "jax")
    without("nncf")
    assert choose_engine("openvino", "float32", "jax")[0] == "openvino"
    with pytest.raises(extras.MissingExtra, match=r"needs nncf.*videoprism-keras\[openvino\]"):
        choose_engine("openvino", "int8", "jax")
    without("onnxruntime")
    with pytest.raises(extras.MissingExtra, match=r"videoprism-keras\[export\]"):
        choose_engine("onnxruntime", "int8", "torch")


def test_onnxruntime_refuses_bfloat16():
    with pytest.raises(ValueError, match=r"engine='openvino'.*Received: engine='onnxruntime', "
                                         r"precision='bfloat16'"):  # fmt: skip
        choose_engine("onnxruntime", "bfloat16", "jax")


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"engine must be one of .*Received: engine='tensorrt'"):
        choose_engine("tensorrt", "int8", "jax")
    with pytest.raises(ValueError, match=r"precision must be one of .*Received: precision='fp8'"):
        choose_engine("auto", "fp8", "jax")


def test_the_backend_defaults_to_keras_own():
    assert choose_engine("auto", "float32") == choose_engine(
        "auto", "float32", keras.backend.backend()
    )


# ------------------------------------------------------------------ Encoder's checks
def test_encoder_refuses_bad_names_before_any_work(small):
    with pytest.raises(ValueError, match="Received: engine='fast'"):
        Encoder(small, engine="fast")
    with pytest.raises(ValueError, match="Received: precision='float16'"):
        Encoder(small, engine="openvino", precision="float16")


def test_encoder_keeps_keras_and_the_model_own_precision_by_default(small):
    encoder = Encoder(small)
    assert (encoder.engine, encoder.precision, encoder.artefact) == ("keras", "float32", None)
    assert encoder.describe().startswith("Keras ")
    assert Encoder(small, engine="auto").engine == "keras"
    # A precision asked for is auto's to place (nothing is built before the first clip).
    assert Encoder(small, precision="float32").engine == "openvino"
    assert Encoder(small, precision="int8").engine == "openvino"


def test_encoder_refuses_a_model_an_engine_cannot_build_from(small, golden_dir):
    with warnings.catch_warnings():  # where bfloat16 is no faster, loading it says so
        warnings.simplefilter("ignore", UserWarning)
        half = vp.VideoPrismBackbone.from_preset(
            golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0, dtype="bfloat16"
        )
    with pytest.raises(ValueError, match=r"from a float32 model.*computes in bfloat16.*"
                                         r"Received: engine='openvino'"):  # fmt: skip
        Encoder(half, engine="openvino", precision="int8")
    with pytest.raises(ValueError, match=r"load it in float32.*Received: engine='auto'"):
        Encoder(half, engine="auto", precision="int8")
    assert Encoder(half, engine="auto", precision="bfloat16").engine == "keras"  # as it is
    quantize_first = r"model.quantize\('int8'\) first.*Received: engine='keras', precision='int8'"
    with pytest.raises(ValueError, match=quantize_first):
        Encoder(small, engine="keras", precision="int8")
    with pytest.raises(ValueError, match=r"dtype='bfloat16'.*Received: engine='keras'"):
        Encoder(small, engine="keras", precision="bfloat16")


def test_encoder_refuses_a_quantized_model_on_an_engine(golden_dir):
    model = vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    model.quantize("int8")
    with pytest.raises(ValueError, match=r"computes in int8: load it in float32, not quantized"):
        Encoder(model, engine="openvino", precision="int8")
    if keras.backend.backend() == "jax":
        assert Encoder(model).precision == "int8"


def test_encoder_refuses_calibration_where_nothing_is_calibrated(small, tmp_path):
    clips = np.zeros((2, 4, 16, 16, 3), "float32")
    with pytest.raises(ValueError, match=r"only applies to int8 on OpenVINO.*engine='onnxruntime'"):
        Encoder(small, engine="onnxruntime", precision="int8", calibration=clips,
                cache_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match=r"Received: calibration with engine='keras'"):
        Encoder(small, calibration=clips)
    for bad in (clips[0], np.zeros((2, 4, 16, 16, 1)), np.zeros((2, 4, 18, 16, 3)),
                np.zeros((0, 4, 16, 16, 3))):  # fmt: skip
        with pytest.raises(ValueError, match=r"calibration must be \(N, T, H, W, C\) clips.*"
                                             r"Received: calibration of shape"):  # fmt: skip
            Encoder(small, engine="openvino", precision="int8", calibration=bad,
                    cache_dir=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match=r"calibration: pixel_values must be in \[0, 1\]"):
        Encoder(small, engine="openvino", precision="int8", calibration=clips + 9,
                cache_dir=tmp_path)  # fmt: skip
    assert not any(tmp_path.iterdir())  # refused before anything was built
