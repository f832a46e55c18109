"""Building an engine's artefact: the video tower exported to ONNX, then converted (and
quantized for int8) for the engine.

Only the video tower is exported: `VideoTower` is a model of its own whose call takes
(pixel_values, frame_padding_mask) and returns `encode_video`'s outputs, named as its
keys. The export goes through our `export.export` (ONNX with a free batch; from the TensorFlow
backend through a JAX child process).

    OpenVINO     float32 / bfloat16: the ONNX model converted to OpenVINO's IR (the
                 precision is chosen when it is compiled); int8: NNCF's post-training
                 quantization in transformer mode, calibrated on real clips.
    ONNX Runtime float32: the ONNX model; int8: ONNX Runtime's dynamic int8 (weights
                 int8, activations quantized per call: no calibration).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .runners import (
    import_nncf,
    import_openvino,
    kept_signal_stack,
    one_clip,
    openvino_core,
    threads,
)

ONNX_FILE = "video_tower.onnx"
OPENVINO_FILE = "video_tower.xml"  # and its .bin
# Largest difference between OpenVINO's float32 and Keras on one clip, relative to the
# output's largest value, that `checked_config` accepts (float32 engines agree to ~1e-6).
CHECK_TOLERANCE = 1e-3


class EngineMismatch(RuntimeError):
    """An engine's float32 of the exported model does not give Keras' outputs: nothing is
    built (`Encoder(engine="auto")` then runs the model on Keras)."""


def version(package: str) -> str:
    return importlib.metadata.version(package)


def output_keys(backbone: keras.Model) -> list[str]:
    """`encode_video`'s keys, sorted (the export's output order)."""
    keys = ["spatial_features", "spatiotemporal_features"]
    if backbone.is_multimodal:
        keys += ["frame_embeddings", "vision_embeddings"]
    return sorted(keys)


@keras.saving.register_keras_serializable(package="videoprism_keras")
class VideoTower(keras.Model):
    """`backbone.encode_video` as a model of its own: what the engines run. Saveable (ONNX
    from TensorFlow is exported from a saved copy by a JAX child process, `onnx_export`).

    Args:
        backbone: `VideoPrismBackbone`. Its weights are shared, not copied.
    """

    def __init__(self, backbone: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        # Not `self.backbone`: `export` reads a model with a backbone as a classifier.
        self.tower = backbone
        self.output_keys = output_keys(backbone)
        self.built = backbone.built  # nothing of its own to build (Keras' exporters ask)

    def call(self, pixel_values: Any, frame_padding_mask: Any) -> dict:
        out = self.tower.encode_video(pixel_values, frame_padding_mask=frame_padding_mask)
        return {key: out[key] for key in self.output_keys}  # the ONNX outputs' names

    def get_config(self) -> dict:
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.tower)}

    @classmethod
    def from_config(cls, config: dict) -> VideoTower:
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)


def input_signature(backbone: keras.Model, shape: tuple[int, int, int], batch: int | None):
    """pixel_values (batch, T, H, W, C) (channels first: (batch, T, C, H, W)) float32 and
    frame_padding_mask (batch, T) int32."""
    frames, height, width = shape
    channels = backbone.frame_shape[-1]
    frame = (channels, height, width) if backbone.data_format == "channels_first" else None
    frame = frame or (height, width, channels)
    return [
        keras.InputSpec(shape=(batch, frames, *frame), dtype="float32", name="pixel_values"),
        keras.InputSpec(shape=(batch, frames), dtype="int32", name="frame_padding_mask"),
    ]


def export_onnx(backbone: keras.Model, path: Path, shape: tuple[int, int, int]) -> Path:
    """The video tower of `backbone` for (T, H, W) clips, as ONNX at `path`."""
    from ..export import export

    tower = VideoTower(backbone)
    # A free batch (`export` gives one from every backend); the runners loop over a batch
    # where an artefact has a fixed one.
    export(tower, path, format="onnx", input_signature=input_signature(backbone, shape, None))
    return path


def calibration_data(clips: np.ndarray) -> list:
    """One (pixels, mask) input per clip, batch of 1 (what any export takes)."""
    mask = np.ones((1, clips.shape[1]), "int32")
    return [(np.ascontiguousarray(clip[None], dtype=np.float32), mask) for clip in clips]


def checked_config(model: Any, clip: tuple, expected: dict) -> dict:
    """OpenVINO's CPU settings under which the float32 `model` gives Keras' `expected`
    outputs on `clip` (pixels, mask): its defaults, else without its generated kernels
    ("snippets"), which compute some small models' temporal attention wrongly (OpenVINO
    2026.4, e.g. the 8-wide heads of the tests' checkpoint). An error if neither does."""
    core, worst = openvino_core(), {}
    model = one_clip(model.clone())  # the shape the runner compiles
    for config in ({}, {"SNIPPETS_MODE": "DISABLE"}):
        settings = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads()}
        compiled = core.compile_model(model, "CPU", {**settings, **config})
        result = compiled(list(clip))
        for output in compiled.outputs:
            (name,) = set(output.get_names()) & set(expected)
            scale = float(np.abs(expected[name]).max()) + 1e-6
            worst[name] = float(np.abs(result[output] - expected[name]).max()) / scale
        if max(worst.values()) <= CHECK_TOLERANCE:
            return config
    raise EngineMismatch(
        f"OpenVINO's float32 of the exported video tower does not match Keras (largest "
        f"relative difference per output: {worst}): run this model on ONNX Runtime or Keras"
    )


def build_openvino(
    onnx: Path, folder: Path, precision: str, clips: np.ndarray, expected: dict
) -> dict:
    """OpenVINO's IR of `onnx` in `folder` (NNCF int8 calibrated on `clips` for int8), and
    the CPU settings it runs under (`checked_config` on the first clip, whose Keras
    float32 outputs are `expected`)."""
    ov = import_openvino()

    model = openvino_core().read_model(str(onnx))  # not convert_model: it sends telemetry
    config = checked_config(model, calibration_data(clips[:1])[0], expected)
    details: dict[str, Any] = {"versions": {"openvino": version("openvino")},
                               "openvino_config": config}  # fmt: skip
    if precision == "int8":
        with kept_signal_stack():  # NNCF compiles on Cores of its own
            nncf = import_nncf()
            model = nncf.quantize(
                model, nncf.Dataset(calibration_data(clips)),
                model_type=nncf.ModelType.TRANSFORMER, subset_size=len(clips),
            )  # fmt: skip
        details["versions"]["nncf"] = version("nncf")
    # The float weights as exported (OpenVINO would halve them to float16 by default).
    ov.save_model(model, str(folder / OPENVINO_FILE), compress_to_fp16=False)
    return details


def build_onnxruntime(onnx: Path, folder: Path, precision: str) -> dict:
    """ONNX Runtime's model in `folder`: `onnx` itself, or its dynamic int8."""
    details: dict[str, Any] = {"versions": {"onnxruntime": version("onnxruntime")}}
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / f"int8.{ONNX_FILE}"
        # One scale per weight matrix (ONNX Runtime's default): per output channel
        # (per_channel=True) was no more accurate on the tests' checkpoint (lower lowest
        # cosines on 3 of its 4 outputs).
        with quiet_root_logger():  # its advice to pre-process the model, on every build
            quantize_dynamic(str(onnx), str(quantized), weight_type=QuantType.QInt8)
        onnx.unlink()
        quantized.rename(onnx)
    return details


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """Root logger warnings off for the block (ONNX Runtime's quantizer logs there)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
