"""Exporting a model for serving outside Python, through Keras' own `Model.export`.

    bb.export("video.onnx", format="onnx", num_frames=16, size=288)

Formats: "tf_saved_model" (TF Serving; `tf.saved_model.load(path).serve(...)`),
"onnx" (ONNX Runtime, Triton) and "litert" (a `.tflite` file for phones). The
frame count, frame size and text length are fixed at export (the model resizes its
position tables to them once, in the traced graph); the batch size may stay free
(None) except where the exporter needs it fixed (PyTorch's exporters and JAX's
ONNX one, jax2onnx: there it defaults to 1). The projections run as plain Keras ops while exporting
(`kernels.portable`): PyTorch's fused oneDNN op has no ONNX or LiteRT translation.

What each Keras backend can export (Keras' support, and what installs from PyPI
beside our pinned versions; tests/README.md says which tests cover which):

    format          JAX              TensorFlow              PyTorch
    tf_saved_model  yes (jax2tf)     yes                     no (Keras needs torch_xla)
    onnx            yes (jax2onnx)   small models (tf2onnx)  yes (torch.onnx)
    litert          no (Keras)       yes (TFLite)            needs litert-torch (not installed)

ONNX from TensorFlow is refused above `TF_ONNX_MAX_PARAMS` parameters: tf2onnx needs
far more memory than the weights (`check_memory`). The artefact is written beside
`filepath` and renamed into place (`export_paths`).

Inputs: a video-only model takes `pixel_values` (B, T, H, W, C) float32 (channels
first: (B, T, C, H, W)) and returns the (B, T, N, D) features. A multimodal one
takes `pixel_values`, `token_ids` and `padding_mask` (B, L) int32 and returns
`text_embeddings` and `vision_embeddings` (B, D), L2-normalised, in that order. A
classifier takes `pixel_values` and returns logits (B, classes). ONNX outputs are
named so ("features" for a video-only model, "logits" for a classifier).

The clip shape is `num_frames` and `size`, as everywhere in the package (`resolution`
until the next release).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import keras

from .constants import EXPORT_FORMATS, EXPORT_SUFFIXES, TF_ONNX_MAX_PARAMS
from .deprecation import renamed_arguments
from .export_paths import check_destination, write_atomically
from .extras import EXPORTERS, require
from .model.kernels import portable

SUFFIXES = EXPORT_SUFFIXES


@renamed_arguments(resolution="size")
def signature_for(
    model: keras.Model,
    num_frames: int | None = None,
    size: int | Sequence[int] | None = None,
    text_length: int = 64,
    batch_size: int | None = None,
) -> list:
    """The fixed input specs of an export: `[pixel_values]`, or `[{pixel_values,
    token_ids, padding_mask}]` for a multimodal backbone (one positional argument).

    Args:
        model: `keras.Model`. A `VideoPrismBackbone` or a model with a `backbone`
            (the classifier), whose input it takes.
        num_frames: int or None. Frames per clip. Defaults to `None`: the model's.
        size: int, (height, width) or None. Frame size (one int for a square).
            Defaults to `None`: the model's. (`resolution` until the next release.)
        text_length: int. Tokens per text (multimodal backbones). Defaults to `64`.
        batch_size: int or None. A fixed batch, or None for any. Defaults to `None`.

    Returns:
        A list of one `keras.InputSpec`, or of one dict of them.
    """
    backbone = getattr(model, "backbone", model)  # a classifier exports its backbone's input
    frames = backbone.num_frames if num_frames is None else _positive(num_frames, "num_frames")
    height, width, channels = backbone.frame_shape
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else size
        height, width = _positive(height, "size"), _positive(width, "size")
    if height % backbone.patch_size or width % backbone.patch_size:
        raise ValueError(
            f"the export's frame size must be a multiple of patch_size={backbone.patch_size} on "
            f"both sides. Received: size={(height, width)}"
        )
    batch = None if batch_size is None else _positive(batch_size, "batch_size")
    frame = (channels, height, width) if backbone.data_format == "channels_first" else None
    frame = frame or (height, width, channels)
    pixels = keras.InputSpec(shape=(batch, frames, *frame), dtype="float32", name="pixel_values")
    if model is not backbone or not backbone.is_multimodal:
        return [pixels]
    length = _positive(text_length, "text_length")
    text = {
        name: keras.InputSpec(shape=(batch, length), dtype="int32", name=name)
        for name in ("token_ids", "padding_mask")
    }
    return [{"pixel_values": pixels, **text}]


@renamed_arguments(resolution="size")
def export(
    model: keras.Model,
    filepath: str | os.PathLike,
    format: str = "tf_saved_model",
    num_frames: int | None = None,
    size: int | Sequence[int] | None = None,
    text_length: int = 64,
    batch_size: int | None = None,
    verbose: bool | None = None,
    input_signature: Any = None,
    **kwargs: Any,
) -> str | os.PathLike:
    """`keras.Model.export` of `model` with inputs fixed at the given shapes.

    Args:
        model: `keras.Model`. A `VideoPrismBackbone` or a `VideoPrismVideoClassifier`.
        filepath: str or path. Where the artefact goes (`.onnx` for ONNX, `.tflite`
            for LiteRT, a directory for a SavedModel).
        format: str. "tf_saved_model", "onnx" or "litert". Defaults to
            `"tf_saved_model"`.
        num_frames: int or None. Frames of the clips the artefact takes. Defaults to
            `None`: the model's own.
        size: int, (height, width) or None. Frame size of the clips (one int for a
            square). Defaults to `None`: the model's own. (`resolution` until the
            next release.)
        text_length: int. Tokens per text (multimodal models). Defaults to `64`.
        batch_size: int or None. A fixed batch, or None for any batch where the
            exporter allows it (PyTorch's exporters and jax2onnx need one: 1 then).
            Defaults to `None`.
        verbose: bool or None. Keras' exporter's messages. Defaults to `None`.
        input_signature: Keras' own argument, instead of the four shapes above.
            Defaults to `None`.
        **kwargs: passed to Keras' exporter (e.g. `opset_version` for ONNX).

    Returns:
        `filepath`.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"export format must be one of {EXPORT_FORMATS}. Received: format={format!r}"
        )
    backend = keras.backend.backend()
    check_backend(format, backend)
    exporter = EXPORTERS.get((format, backend), ())
    require(exporter, f"export(format={format!r}) from {backend}", f"--format {format}")
    check_destination(filepath, format)
    check_memory(model, format, backend)
    if batch_size is None and (backend == "torch" or (backend, format) == ("jax", "onnx")):
        batch_size = 1  # PyTorch's exporters and jax2onnx trace one fixed shape
    signature = input_signature or signature_for(model, num_frames, size, text_length, batch_size)

    said, staged = io.StringIO(), []

    def write(path: os.PathLike) -> None:
        staged.append(os.fspath(path))
        # Keras' messages name the staged path: they are said with `filepath` instead.
        with portable(), contextlib.redirect_stdout(said):
            keras.Model.export(
                model, path, format=format, verbose=verbose, input_signature=signature, **kwargs
            )
        if format == "onnx":
            _name_onnx_outputs(path, output_names(model))
            _drop_unused_files(path)

    try:
        write_atomically(filepath, write)
    finally:
        text = said.getvalue()
        sys.stdout.write(text.replace(staged[0], os.fspath(filepath)) if staged else text)
    return filepath


def output_names(model: keras.Model) -> list[str]:
    """The artefact's outputs in order: the call's dict keys (sorted), or one name; a
    wrapper that returns a list names its outputs itself (`export_output_names`)."""
    names = getattr(model, "export_output_names", None)  # engine.build.VideoTower
    if names:
        return list(names)
    if getattr(model, "backbone", None) is not None:
        return ["logits"]
    if model.is_multimodal:
        return ["text_embeddings", "vision_embeddings"]
    return ["features"]


def _name_onnx_outputs(path: str | os.PathLike, names: list[str]) -> None:
    """Gives an ONNX graph's outputs their names (each exporter makes up its own, such as
    "div_out_8"), through Identity nodes."""
    import onnx

    graph_model = onnx.load(os.fspath(path))
    graph = graph_model.graph
    if [o.name for o in graph.output] == names:
        return
    if len(graph.output) != len(names):
        raise AssertionError(f"the export has {len(graph.output)} outputs, expected {names}")
    for output, name in zip(graph.output, names, strict=True):
        graph.node.append(onnx.helper.make_node("Identity", [output.name], [name]))
        output.name = name
    onnx.save(graph_model, os.fspath(path))


def _drop_unused_files(path: str | os.PathLike) -> None:
    """Deletes what the exporter left beside the artefact in its staging folder when the
    artefact references none of it (jax2onnx writes a large model's weights to a `.data`
    file, which `_name_onnx_outputs` then saves inline: the file would only take space)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    tensors = [*graph.initializer, *(a.t for node in graph.node for a in node.attribute)]
    if any(uses_external_data(tensor) for tensor in tensors):
        return
    artefact = os.path.basename(path)
    folder = os.path.dirname(os.fspath(path))
    for name in os.listdir(folder):
        if name != artefact and os.path.isfile(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value


def check_backend(format: str, backend: str) -> None:
    """Whether Keras exports `format` from `backend`: a `ValueError` if not, whose
    `cli_message` says it with the command's flags (`--backend`, `--format`)."""
    if format == "litert" and backend == "jax":
        err = ValueError(
            "Keras exports LiteRT from the TensorFlow or PyTorch backend only. Received: "
            "format='litert' under KERAS_BACKEND=jax; set KERAS_BACKEND=tensorflow"
        )
        err.cli_message = ("--format litert needs --backend tensorflow: Keras exports LiteRT "
                           "from TensorFlow (or PyTorch), not JAX")  # fmt: skip
        raise err
    if format == "tf_saved_model" and backend == "torch":
        err = ValueError(
            "Keras exports a SavedModel from PyTorch only through torch_xla. Received: "
            "format='tf_saved_model' under KERAS_BACKEND=torch; use the JAX or TensorFlow "
            "backend (or format='onnx')"
        )
        err.cli_message = ("--format tf_saved_model needs --backend jax or --backend "
                           "tensorflow (or --format onnx): Keras exports a SavedModel from "
                           "PyTorch only through torch_xla")  # fmt: skip
        raise err


def check_memory(model: keras.Model, format: str, backend: str) -> None:
    """Whether the export fits in memory: ONNX from TensorFlow (tf2onnx) of a model above
    `TF_ONNX_MAX_PARAMS` parameters does not (see there). A `ValueError` if not, whose
    `cli_message` names the flags."""
    if (format, backend) != ("onnx", "tensorflow"):
        return
    params = sum(math.prod(weight.shape) for weight in model.weights)
    if params <= TF_ONNX_MAX_PARAMS:
        return
    why = (f"the model has {params:,} parameters, and tf2onnx needs hundreds of times their "
           f"size in memory above {TF_ONNX_MAX_PARAMS:,}")  # fmt: skip
    err = ValueError(
        f"exporting ONNX from the TensorFlow backend would run out of memory: {why}. "
        "Received: format='onnx' under KERAS_BACKEND=tensorflow; set KERAS_BACKEND=jax "
        "(or torch), which export it in a few GB"
    )
    err.cli_message = (f"--format onnx from --backend tensorflow would run out of memory "
                       f"({why}): use --backend jax (or --backend torch)")  # fmt: skip
    raise err
