"""XLA's CPU options for float32 JAX executables (backend.float32_compiler_options)."""

import numpy as np
import pytest

from videoprism_keras.backend import float32_compiler_options
from videoprism_keras.constants import XLA_CPU_FLOAT32_OPTIONS


def test_the_options_are_opt_in_and_given_on_x86_linux_only():
    assert float32_compiler_options("1", "x86_64", "Linux") == XLA_CPU_FLOAT32_OPTIONS
    assert float32_compiler_options("1", "AMD64", "Linux") == XLA_CPU_FLOAT32_OPTIONS
    assert float32_compiler_options("", "x86_64", "Linux") is None
    assert float32_compiler_options("0", "x86_64", "Linux") is None
    assert float32_compiler_options("1", "arm64", "Darwin") is None
    assert float32_compiler_options("1", "aarch64", "Linux") is None


def test_a_jitted_projection_with_the_options_keeps_its_numbers():
    jax = pytest.importorskip("jax")
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the options are for x86-64")
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(64, 96)).astype("float32"), rng.normal(size=(96, 128)).astype("float32")

    def forward(x, w):
        return jax.nn.gelu(x @ w, approximate=False)

    options = float32_compiler_options("1", "x86_64", "Linux")
    compiled = jax.jit(forward, compiler_options=options).lower(x, w).compile()
    assert "__onednn_fusion" in compiled.as_text()  # the dot went to oneDNN
    np.testing.assert_allclose(compiled(x, w), jax.jit(forward)(x, w), rtol=1e-5, atol=1e-5)
