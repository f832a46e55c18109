"""The int8 GEMM of a quantized projection (kernels.int8_matmul): the same numbers as Keras'."""

import keras
import numpy as np
import pytest
from helpers import TINY, random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.model.kernels import activate, int8_matmul
from videoprism_keras.model.projection import Projection
from videoprism_keras.runtime import compile_inference

pytestmark = pytest.mark.backend


def _keras_int8(layer, x):
    """`layer`'s output as Keras' own `Dense._int8_call` computes it."""
    return activate(keras.layers.Dense.quantized_call(layer, x), layer.fused_activation)


def test_int8_matmul_is_the_exact_int32_product_over_the_whole_int8_range():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (37, 24)).astype("int8")
    kernel = rng.integers(-128, 128, (24, 10)).astype("int8")
    x[0], kernel[:, 0] = -128, 127  # the extremes, where a sign flip or a saturation shows
    expected = x.astype(np.int64) @ kernel.astype(np.int64)
    model = keras.Sequential([keras.layers.Identity()])  # compile_inference's variables
    compiled = compile_inference(model, lambda a, b: int8_matmul(a, b))
    for got in (keras.ops.convert_to_numpy(int8_matmul(x, kernel)), compiled(x, kernel)):
        assert keras.backend.standardize_dtype(got.dtype) == "int32"
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_a_quantized_projection_gives_keras_int8_outputs_bit_for_bit(activation):
    keras.utils.set_random_seed(0)
    layer = Projection(24, activation=activation)
    layer.build((None, 5, 16))
    layer.quantize("int8")
    x = np.random.default_rng(1).normal(size=(3, 5, 16)).astype("float32")
    fast = layer._int8_inference(training=False)
    assert fast == (keras.backend.backend() in ("tensorflow", "torch"))
    expected = to_numpy(_keras_int8(layer, x))
    np.testing.assert_array_equal(to_numpy(layer(x)), expected)
    compiled = compile_inference(keras.Sequential([layer]), lambda v: layer(v))
    np.testing.assert_allclose(compiled(x), expected, rtol=1e-6, atol=1e-6)
    # Training and LoRA keep Keras' call (its custom gradient).
    assert not layer._int8_inference(training=True)


def test_a_quantized_model_runs_as_with_keras_int8_calls(monkeypatch):
    keras.utils.set_random_seed(2)
    model = vp.VideoPrismBackbone(**TINY)
    model.quantize("int8")
    video = random_video(batch=2)
    ours = to_numpy(model(video))
    monkeypatch.setattr(Projection, "_int8_inference", lambda self, training: False)
    np.testing.assert_allclose(ours, to_numpy(model(video)), rtol=1e-6, atol=1e-6)
