"""Backend-specific kernels: the one module of the model that branches on the backend.

Everything else under `model/` is plain Keras ops. What lives here is the dense
projection, most of a forward pass's time (benchmarks/README.md, breakdown), spelled
per backend so that the bias and the activation need no pass of their own, and the
rematerialisation of a transformer block, which JAX needs spelled out (see `remat`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

_PORTABLE = contextvars.ContextVar("videoprism_portable_kernels", default=False)


@contextlib.contextmanager
def portable() -> Iterator[None]:
    """`linear` as plain Keras ops (a matmul and an add) inside this context: what an
    exporter can translate (ONNX, LiteRT), where PyTorch's oneDNN-only op cannot go."""
    token = _PORTABLE.set(True)
    try:
        yield
    finally:
        _PORTABLE.reset(token)


def linear(x: Any, kernel: Any, bias: Any, activation: str | None = None) -> Any:
    """`activation(x @ kernel + bias)` over the last axis of `x`, of any rank.

    One 2-D GEMM with the bias inside it: TensorFlow's graph optimiser fuses
    MatMul + BiasAdd (+ exact GELU) into one oneDNN kernel; PyTorch gets the same
    oneDNN kernel for inference on the CPU (and `addmm`, which adds the bias in the
    GEMM, otherwise); XLA gets a plain 2-D dot, which it runs faster over a whole
    JAX forward pass than the N-D matmul (benchmarks/README.md, ablation).
    """
    lead, x = ops.shape(x)[:-1], ops.reshape(x, (-1, x.shape[-1]))
    kernel, bias = ops.convert_to_tensor(kernel), ops.convert_to_tensor(bias)
    backend = keras.backend.backend()
    if backend != "torch" or not _torch_compiling():  # dynamo cannot read a ContextVar
        backend = "portable" if _PORTABLE.get() else backend
    if backend == "tensorflow":
        import tensorflow as tf

        y = tf.nn.bias_add(tf.matmul(x, kernel), bias)
    elif backend == "torch":
        import torch

        if _onednn_linear(x, kernel):
            # oneDNN runs our shapes faster than MKL's addmm, with the activation fused
            # ("gelu" with algorithm "none" is the exact erf GELU).
            fused = activation if activation in ("gelu", "relu") else "none"
            algorithm = "none" if fused == "gelu" else ""
            y = torch.ops.mkldnn._linear_pointwise(x, kernel.t(), bias, fused, [], algorithm)
            activation = None
        else:
            y = torch.addmm(bias, x, kernel)
    else:
        y = ops.matmul(x, kernel) + bias
    # -1 for the leading axis: an exported graph keeps its batch free (jax2onnx maps a
    # symbolic size only to an axis of the reshaped tensor itself).
    lead = (-1, *lead[1:]) if lead else lead
    return ops.reshape(activate(y, activation), (*lead, kernel.shape[-1]))


def int8_matmul(x: Any, kernel: Any) -> Any:
    """The exact int32 product of an int8 (M, K) `x` and an int8 (K, N) `kernel`.

    Keras' own int8 matmul has no fast integer GEMM on the CPU under two backends
    (benchmarks/README.md, int8 profile): TensorFlow runs `tf.matmul(..., output_type=int32)`
    as Eigen's generic integer contraction, and PyTorch casts both to int32 for a
    `torch.matmul` without BLAS. oneDNN's VNNI GEMM is reachable from each: PyTorch's
    `_int_mm`, and TensorFlow's `QuantizedMatMulWithBias`, which takes an unsigned left
    operand: x + 128 (a flip of the sign bit), whose extra 128 * column sums of the kernel
    its int32 bias takes back. Integer sums, so the result is the same, bit for bit.
    """
    x, kernel = ops.convert_to_tensor(x), ops.convert_to_tensor(kernel)
    backend = keras.backend.backend()
    if backend == "tensorflow" and not _PORTABLE.get() and _tensorflow_has_int8_gemm():
        return _tensorflow_int8_matmul(x, kernel)
    if backend == "torch" and not _PORTABLE.get() and _torch_int8_gemm(x, kernel):
        import torch

        return torch._int_mm(x, kernel)
    return ops.matmul(x, kernel)


def _tensorflow_int8_matmul(x, kernel):
    import tensorflow as tf

    shifted = tf.bitcast(tf.bitwise.bitwise_xor(x, tf.constant(-128, tf.int8)), tf.quint8)
    compensation = -128 * tf.reduce_sum(tf.cast(kernel, tf.int32), axis=0)
    product = tf.raw_ops.QuantizedMatMulWithBias(
        a=shifted, b=tf.bitcast(kernel, tf.qint8), bias=tf.bitcast(compensation, tf.qint32),
        min_a=0.0, max_a=255.0, min_b=-127.0, max_b=127.0, Toutput=tf.qint32,
    )[0]  # fmt: skip
    return tf.bitcast(product, tf.int32)


@functools.cache
def _tensorflow_has_int8_gemm():
    """Whether this TensorFlow build registers the oneDNN int8 GEMM (x86 builds with
    oneDNN do; others fall back to `tf.matmul`)."""
    import tensorflow as tf

    with tf.init_scope():  # eagerly, also when first asked while a tf.function traces
        try:
            x = tf.constant([[1, -2]], tf.int8)
            return bool(tf.reduce_all(_tensorflow_int8_matmul(x, tf.transpose(x)) == 5))
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
            return False


def _torch_int8_gemm(x, kernel):
    """Whether `torch._int_mm` runs this product: on the CPU, outside inductor, with
    both operands int8 and 2-D."""
    import torch

    return (
        x.device.type == "cpu"
        and not _torch_compiling()
        and x.dtype == kernel.dtype == torch.int8
        and x.ndim == kernel.ndim == 2
    )


def activate(y: Any, activation: str | None) -> Any:
    """The model's activations by name: None, "gelu" (exact erf, as in the official
    vision encoders; Keras' "gelu" activation is the tanh approximation) or "relu"."""
    if activation == "gelu" and keras.backend.backend() == "tensorflow" and _PORTABLE.get():
        # The same exact GELU through `erf`: TensorFlow's own kernel is written with
        # `erfc`, which ONNX has no operator for. (JAX's `erf` is what jax2tf cannot
        # serialise, so JAX keeps its own GELU.)
        return 0.5 * y * (1.0 + ops.erf(y * 0.7071067811865476))
    if activation == "gelu":
        return ops.gelu(y, approximate=False)
    if activation == "relu":
        return ops.relu(y)
    if activation is not None:
        raise ValueError(f"unknown activation. Received: activation={activation!r}")
    return y


def remat(block: keras.layers.Layer, x: Any, **kwargs: Any) -> Any:
    """`block(x, **kwargs)` in training, keeping only `x` for the backward pass, which
    runs the block again (gradient checkpointing).

    PyTorch gets `keras.remat` (`torch.utils.checkpoint`). TensorFlow gets
    `tf.recompute_grad`'s scheme and JAX `jax.checkpoint`'s, each with a change. Both
    compilers undo a plain recomputation on the CPU: XLA's barriers are gone before
    common-subexpression elimination merges it back into the forward pass, and
    TensorFlow's graph runs it as soon as its input exists, in the forward pass; either
    way every activation is kept (measured: no saving at all; benchmarks/README.md,
    train step). Here the recomputation starts from `x + min(|g|, 0)`, g one element of
    the incoming gradient: an input that no forward value equals and that cannot exist
    before the backward pass reaches the block. The sum is exact (0 for any g but NaN,
    which would poison the gradient anyway). TensorFlow's dropout seeds are also put
    back for the recomputation (with `tf.recompute_grad` they have moved on by then, and
    the gradient would be of other masks).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_remat(block, x, kwargs)
    if backend != "jax":
        return keras.remat(lambda x: block(x, **kwargs))(x)
    import jax

    trainable = [v.value for v in block.trainable_variables]
    frozen = [v.value for v in block.non_trainable_variables]  # dropout seeds, LoRA's base

    def forward(trainable, frozen, x):
        return block.stateless_call(trainable, frozen, x, **kwargs)

    @jax.custom_vjp
    def run(trainable, frozen, x):
        return forward(trainable, frozen, x)

    def run_forward(trainable, frozen, x):
        return forward(trainable, frozen, x), (trainable, frozen, x)

    def run_backward(saved, gradients):
        trainable, frozen, x = saved
        gradient = gradients[0]
        _, pullback = jax.vjp(lambda t, x: forward(t, frozen, x)[0], trainable, _tied(x, gradient))
        d_trainable, d_x = pullback(gradient)
        return d_trainable, [_no_gradient(v) for v in frozen], d_x

    run.defvjp(run_forward, run_backward)
    y, frozen = run(trainable, frozen, x)
    for variable, value in zip(block.non_trainable_variables, frozen, strict=True):
        if _is_seed(variable):  # dropout's seeds move on, as without remat (and nothing else
            variable.assign(value)  # is written: LoRA's frozen kernels are unchanged)
    return y


def _tensorflow_remat(block, x, kwargs):
    import tensorflow as tf

    seeds = [v for v in block.non_trainable_variables if _is_seed(v)]

    @tf.custom_gradient
    def run(x):
        before = [tf.identity(v.value) for v in seeds]
        y = block(x, **kwargs)

        def backward(gradient, variables=None):
            after = [tf.identity(v.value) for v in seeds]
            for v, value in zip(seeds, before, strict=True):
                v.assign(value)  # the forward pass's masks again
            with tf.GradientTape() as tape:
                tape.watch(x)
                again = block(_tied(x, gradient), **kwargs)
            for v, value in zip(seeds, after, strict=True):
                v.assign(value)
            d_x, d_variables = tape.gradient(again, (x, variables), output_gradients=gradient)
            return d_x, d_variables

        return y, backward

    return run(x)


def _is_seed(variable) -> bool:
    """A dropout seed: the one integer state of a block (its weights are floats)."""
    return "int" in str(variable.dtype)


def _tied(x, gradient):
    """`x`, as a value that depends on `gradient`: `x + min(|g|, 0)` for one element g."""
    return x + ops.cast(ops.minimum(ops.abs(ops.reshape(gradient, (-1,))[0]), 0), x.dtype)


def _no_gradient(value):
    import jax
    import numpy as np

    if jax.numpy.issubdtype(value.dtype, jax.numpy.inexact):
        return jax.numpy.zeros_like(value)
    return np.zeros(value.shape, jax.dtypes.float0)  # what JAX takes for an integer


def _onednn_linear(x, kernel):
    """Whether PyTorch can run `linear` as one oneDNN call: on the CPU, with a oneDNN
    build, without autograd (the op has no gradient, so training uses addmm) and with
    a contiguous kernel (a strided one, e.g. a column slice, takes oneDNN's reference
    path, far slower)."""
    import torch

    return (
        x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not _torch_compiling()  # inductor brings its own GEMM (and cannot trace this op)
        and kernel.is_contiguous()
        and _torch_has_onednn_linear()
    )


def _torch_compiling():
    import torch

    return torch.compiler.is_compiling()


@functools.cache
def _torch_has_onednn_linear():
    import torch

    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
