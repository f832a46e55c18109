"""Compiled inference functions (numpy in, numpy out) and numpy probabilities of logits.

`model.predict` compiles only `call`; embedding tools want other outputs of
`encode_video`/`encode_text` and independent batch sizes, so we compile those
functions ourselves: `jax.jit` with the weights passed as arguments (not baked in
as constants), `tf.function` on TensorFlow, and inference mode on PyTorch.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from .backend import float32_compiler_options
from .engine.build import EngineMismatch
from .model.inputs import check_pixel_values, check_token_ids
from .model.quantization import model_precision


def compile_inference(model: keras.Model, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(*arrays) -> dict or tensor` built from `model`'s layers, compiled for inference.

    Changes nothing outside the function; `Encoder` is what also tunes the allocator.

    Args:
        model: `keras.Model`. The model whose variables `fn` reads.
        fn: callable. Takes arrays, returns a tensor or a structure of them.

    Returns:
        A function of numpy arrays that returns numpy arrays (floats as float32), in
        the same structure as `fn`'s.
    """
    backend = keras.backend.backend()
    to_numpy = lambda out: keras.tree.map_structure(keras.ops.convert_to_numpy, out)  # noqa: E731

    def float32_fn(*args):  # floats leave as float32 whatever the compute dtype (bfloat16)
        return keras.tree.map_structure(_as_float32, fn(*args))

    if backend == "jax":
        import jax

        variables = list(model.variables)

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return float32_fn(*args)

        # oneDNN's GEMM for float32 dots when opted in (`backend.float32_compiler_options`);
        # never for bfloat16 or int8 models, whose dots jaxlib's defaults run faster.
        options = float32_compiler_options() if model_precision(model) == "float32" else None
        jitted = jax.jit(stateless, compiler_options=options)
        return lambda *args: to_numpy(jitted([v.value for v in variables], *args))
    if backend == "tensorflow":
        import tensorflow as tf

        # One trace per input shape, like jax.jit: the model needs static frame counts,
        # frame sizes and text lengths (reduce_retracing would make them unknown).
        traced = tf.function(float32_fn)
        return lambda *args: to_numpy(traced(*args))
    if backend == "torch":
        import torch

        def run(*args):
            with torch.inference_mode():
                return to_numpy(float32_fn(*(keras.ops.convert_to_tensor(a) for a in args)))

        return run
    return lambda *args: to_numpy(float32_fn(*args))


OPT_OUT = "VIDEOPRISM_KEEP_FREED_MEMORY"
CACHE_OPT_OUT = "VIDEOPRISM_COMPILATION_CACHE"
# Programs that compile faster than this are not worth a disk read (JAX's default is 1 s,
# which would skip the text tower's programs, compiled anew by every CLI command).
MIN_CACHED_COMPILE_S = 0.2


@functools.cache
def persistent_compilation_cache() -> str | None:
    """Keeps XLA's compiled programs on disk, so that a second process skips compilation.

    JAX compiles each (function, input shape) once per process, and every `videoprism`
    command pays it again before its first clip. With JAX's
    persistent cache, set once per process by the first `Encoder` under
    `VIDEOPRISM_CACHE` (`~/.cache/videoprism_keras/xla`), later processes load the
    program instead (figures: benchmarks/README.md, "Cold start"). A cache directory the
    user set for JAX is kept. `VIDEOPRISM_COMPILATION_CACHE=0` turns it off. TensorFlow
    (`tf.function` traces) and PyTorch (eager) have no compiled program to keep. Returns
    the directory in use, or None.
    """
    if os.environ.get(CACHE_OPT_OUT) == "0" or keras.backend.backend() != "jax":
        return None
    import jax

    from .hub import cache_root

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_root() / "xla"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_CACHED_COMPILE_S)
    return jax.config.jax_compilation_cache_dir


@functools.cache
def keep_freed_memory() -> bool:
    """Lets glibc's malloc keep large freed blocks for reuse instead of unmapping them.

    By default glibc serves each block over 32 MB with its own mmap and unmaps it
    when freed, so every (16, 12, 256, 256) attention tensor of a forward pass gets
    fresh pages and pays a page fault per 4 KB on first touch. PyTorch's CPU tensors
    (and XLA's buffers) come from malloc: keeping the blocks makes a base forward
    pass faster on PyTorch (benchmarks/README.md). TensorFlow has its own
    allocator. The process then keeps up to 1 GiB of freed memory mapped; this is
    what the tuning guides' `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_`
    environment variables do, set once per process when the first `Encoder` is made
    (the apps' and the CLI's inference entry point). `VIDEOPRISM_KEEP_FREED_MEMORY=0`
    turns it off. Returns whether it applied (only
    on Linux with glibc).
    """
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT) == "0":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc; musl has no mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, limit = -1, -3, 1 << 30
    return bool(mallopt(m_mmap_threshold, limit)) and bool(mallopt(m_trim_threshold, limit))


def _as_float32(x: Any) -> Any:
    half = keras.backend.standardize_dtype(x.dtype) in ("bfloat16", "float16")
    return keras.ops.cast(x, "float32") if half else x


class Encoder:
    """Compiled `encode_video` / `encode_text` of one backbone, cached per output set.

    Making one applies `keep_freed_memory()` to the process (unless turned off with
    `VIDEOPRISM_KEEP_FREED_MEMORY=0`): inference then reuses its large buffers; and,
    on JAX, `persistent_compilation_cache()`: a later process skips compilation.

    The video tower may run on an integrated engine instead of Keras (docs/engines.md):
    OpenVINO or ONNX Runtime, exported, quantized (int8) and compiled by us for each clip
    shape on first use, and cached on disk. The text tower stays on Keras.

    Args:
        model: `keras.Model`. A `VideoPrismBackbone`.
        engine: str. "keras", "openvino", "onnxruntime", or "auto": the first installed
            of `ENGINE_PREFERENCE[precision]` (`engine.choose_engine`), and without a
            precision Keras, which runs the model as it is. Defaults to `"auto"`.
        precision: str or None. "float32", "bfloat16" or "int8". On "keras" the model
            must already compute in it (a bfloat16 policy; `model.quantize("int8")`);
            the other engines build it from a float32 model. Defaults to `None`: the
            model's own.
        calibration: array or None. (N, T, H, W, C) clips (uint8, or floats in [0, 1])
            that OpenVINO's int8 is calibrated on, built at once for their shape.
            Defaults to `None`: the first clips `video()` gets (at most
            `CALIBRATION_CLIPS`), which the cached artefact then keeps.
        cache_dir: str, path or None. The engines' artefacts. Defaults to `None`:
            `hub.cache_root()/"engines"`.
    """

    def __init__(
        self,
        model: keras.Model,
        engine: str = "auto",
        precision: str | None = None,
        calibration: ArrayLike | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        from .engine.resolve import resolve

        self.engine, self.precision, self.reason = resolve(model, engine, precision)
        if calibration is not None and (self.engine, self.precision) != ("openvino", "int8"):
            raise ValueError(
                "calibration only applies to int8 on OpenVINO (NNCF). Received: calibration "
                f"with engine={self.engine!r}, precision={self.precision!r}"
            )
        keep_freed_memory()
        persistent_compilation_cache()
        self.model = model
        self._engine = None
        # auto's float32 may fall back to Keras (`video`); Keras' bfloat16 and int8 need
        # another model (a dtype policy, `quantize`), so those cannot.
        self._falls_back = engine == "auto" and self.precision == "float32"
        if self.engine == "keras":
            self._compile_keras_video()
        else:
            from .engine.session import EngineVideo

            self._engine = EngineVideo(model, self.engine, self.precision, calibration, cache_dir)
        self._text = compile_inference(model, lambda ids, mask: model.encode_text(ids, mask))

    def _compile_keras_video(self) -> None:
        model = self.model
        self._video = compile_inference(model, lambda x: model.encode_video(x))
        self._video_masked = compile_inference(
            model, lambda x, m: model.encode_video(x, frame_padding_mask=m)
        )

    @property
    def artefact(self) -> str | None:
        """The key of the engine artefact last used (None on Keras, or before the first clip)."""
        return None if self._engine is None else self._engine.artefact

    def describe(self) -> str:
        """What runs the video tower, in one line (what the CLI says on stderr)."""
        if self._engine is not None:
            return self._engine.describe()
        return f"Keras {keras.__version__} on {keras.backend.backend()}, {self.precision}"

    def video(self, pixels: np.ndarray, frame_padding_mask: np.ndarray | None = None) -> dict:
        """`model.encode_video` of concrete (B, T, H, W, C) pixels (checked first), with
        an optional (B, T) frame mask (1 = real frame): a dict of numpy arrays."""
        pixels = check_pixel_values(pixels)  # compiled code cannot check values
        if self._engine is not None:
            try:
                return self._engine(pixels, engine_mask(pixels, frame_padding_mask))
            except EngineMismatch as err:
                if not self._falls_back:
                    raise
                self._fall_back_to_keras(err)
        if frame_padding_mask is None:
            return self._video(pixels)
        return self._video_masked(pixels, np.asarray(frame_padding_mask, dtype="int32"))

    def _fall_back_to_keras(self, err: Exception) -> None:
        """auto's float32 on an engine that does not match Keras on this model: Keras from
        here on (the model is float32), said once."""
        from .engine.choice import LABELS

        warnings.warn(f"videoprism: {err}; auto runs float32 on Keras instead", stacklevel=3)
        self.reason = f"Keras: {LABELS[self.engine]}'s float32 does not match it on this model"
        self.engine, self.precision, self._engine = "keras", "float32", None
        self._compile_keras_video()

    def text(self, token_ids: np.ndarray, padding_mask: np.ndarray) -> np.ndarray:
        """`model.encode_text` of (B, L) token ids and padding mask: (B, D) embeddings."""
        ids, mask = np.asarray(token_ids), np.asarray(padding_mask, "int32")
        check_token_ids(ids, self.model.vocabulary_size)  # before the int32 cast hides a float
        ids = ids.astype("int32", copy=False)
        return self._text(*trim_padding(ids, mask))


def engine_mask(pixels: np.ndarray, frame_padding_mask: ArrayLike | None) -> np.ndarray:
    """The (B, T) int32 frame mask an engine takes: all ones for None; else checked."""
    if pixels.ndim != 5:
        raise ValueError(
            f"pixel_values must be (batch, frames, height, width, channels). Received: "
            f"pixel_values of shape {pixels.shape}"
        )
    if frame_padding_mask is None:
        return np.ones(pixels.shape[:2], "int32")
    mask = np.asarray(frame_padding_mask)
    if mask.shape != pixels.shape[:2] or not np.isin(mask, (0, 1)).all():
        raise ValueError(
            f"frame_padding_mask must be (batch, frames) = {pixels.shape[:2]} of 0 and 1. "
            f"Received: frame_padding_mask of shape {mask.shape}"
        )
    return mask.astype("int32")


def trim_padding(
    token_ids: np.ndarray, padding_mask: np.ndarray, min_length: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Drops the columns after the last real token of the batch, keeping a power of two.

    Exact: padded tokens are masked out of every attention and the class token
    carries no position, so they never reach the embedding. Prompts are short
    ("a video of {}." is ~8 tokens of the 64 the tokenizer pads to), and the text
    tower's cost is linear (or worse) in the length. Rounding up to a power of two
    keeps the compiled shapes few.
    """
    real = np.flatnonzero(padding_mask.any(axis=0))
    length = int(real[-1]) + 1 if len(real) else 1
    keep = min(padding_mask.shape[1], max(min_length, 1 << (length - 1).bit_length()))
    return token_ids[:, :keep], padding_mask[:, :keep]


# ----------------------------------------------- probabilities of numpy logits
def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of logits (numpy, float32 or wider)."""
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """Independent probabilities of logits, without overflow warnings for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
