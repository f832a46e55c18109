"""Exporting a model for serving outside Python, through Keras' own `Model.export`.

    bb.export("video.onnx", format="onnx", num_frames=16, resolution=288)

Formats: "tf_saved_model" (TF Serving; `tf.saved_model.load(path).serve(...)`),
"onnx" (ONNX Runtime, Triton) and "litert" (a `.tflite` file for phones). The
frame count, resolution and text length are fixed at export (the model resizes its
position tables to them once, in the traced graph); the batch size may stay free
(None) except where the exporter needs it fixed (PyTorch's exporters and JAX's
ONNX one, jax2onnx: there it defaults to 1). The projections run as plain Keras ops while exporting
(`kernels.portable`): PyTorch's fused oneDNN op has no ONNX or LiteRT translation.

What each Keras backend can export (Keras' support, and what installs from PyPI
beside our pinned versions; tests/README.md says which tests cover which):

    format          JAX              TensorFlow            PyTorch
    tf_saved_model  yes (jax2tf)     yes                   no (Keras needs torch_xla)
    onnx            yes (jax2onnx)   yes (tf2onnx)         yes (torch.onnx)
    litert          no (Keras)       yes (TFLite)          needs litert-torch (not installed)

Inputs: a video-only model takes `pixel_values` (B, T, H, W, C) float32 (channels
first: (B, T, C, H, W)) and returns the (B, T, N, D) features. A multimodal one
takes `pixel_values`, `token_ids` and `padding_mask` (B, L) int32 and returns
`text_embeddings` and `vision_embeddings` (B, D), L2-normalised, in that order. A
classifier takes `pixel_values` and returns logits (B, classes). ONNX outputs are
named so ("features" for a video-only model, "logits" for a classifier).
"""

import os

import keras

from .model.kernels import portable

FORMATS = ("tf_saved_model", "onnx", "litert")
SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}


def signature_for(model, num_frames=None, resolution=None, text_length=64, batch_size=None):
    """The fixed input specs of an export: `[pixel_values]`, or `[{pixel_values,
    token_ids, padding_mask}]` for a multimodal backbone (one positional argument)."""
    backbone = getattr(model, "backbone", model)  # a classifier exports its backbone's input
    frames = backbone.num_frames if num_frames is None else _positive(num_frames, "num_frames")
    height, width, channels = backbone.frame_shape
    if resolution is not None:
        height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
        height, width = _positive(height, "resolution"), _positive(width, "resolution")
    if height % backbone.patch_size or width % backbone.patch_size:
        raise ValueError(
            f"export resolution must be a multiple of patch_size={backbone.patch_size} on both "
            f"sides. Received: resolution={(height, width)}"
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


def export(
    model,
    filepath,
    format="tf_saved_model",
    num_frames=None,
    resolution=None,
    text_length=64,
    batch_size=None,
    verbose=None,
    input_signature=None,
    **kwargs,
):
    """`keras.Model.export` of `model` with inputs fixed at the given shapes.

    Args:
        format: "tf_saved_model", "onnx" or "litert".
        num_frames, resolution: the clip shape the artefact takes (default: the
            model's own); `resolution` is a side or (height, width).
        text_length: tokens per text (multimodal models).
        batch_size: a fixed batch, or None for any batch where the exporter allows it.
        input_signature: Keras' own argument, instead of the four above.
        **kwargs: passed to Keras' exporter (e.g. `opset_version` for ONNX).
    """
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}. Received: format={format!r}")
    backend = keras.backend.backend()
    if format == "litert" and backend == "jax":
        raise ValueError(
            "Keras exports LiteRT from the TensorFlow or PyTorch backend only. Received: "
            "format='litert' under KERAS_BACKEND=jax; set KERAS_BACKEND=tensorflow"
        )
    if format == "tf_saved_model" and backend == "torch":
        raise ValueError(
            "Keras exports a SavedModel from PyTorch only through torch_xla. Received: "
            "format='tf_saved_model' under KERAS_BACKEND=torch; use the JAX or TensorFlow "
            "backend (or format='onnx')"
        )
    suffix = SUFFIXES.get(format)
    if suffix and not os.fspath(filepath).endswith(suffix):
        raise ValueError(
            f"a {format} artefact is a {suffix} file. Received: filepath={os.fspath(filepath)!r}"
        )
    if batch_size is None and (backend == "torch" or (backend, format) == ("jax", "onnx")):
        batch_size = 1  # PyTorch's exporters and jax2onnx trace one fixed shape
    signature = input_signature or signature_for(
        model, num_frames, resolution, text_length, batch_size
    )
    with portable():
        keras.Model.export(
            model, filepath, format=format, verbose=verbose, input_signature=signature, **kwargs
        )
    if format == "onnx":
        _name_onnx_outputs(filepath, output_names(model))
    return filepath


def output_names(model):
    """The artefact's outputs in order: the call's dict keys (sorted), or one name."""
    if getattr(model, "backbone", None) is not None:
        return ["logits"]
    if model.is_multimodal:
        return ["text_embeddings", "vision_embeddings"]
    return ["features"]


def _name_onnx_outputs(path, names):
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


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value
