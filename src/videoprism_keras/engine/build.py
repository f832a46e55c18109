"""Building an engine's artefact: the video tower exported to ONNX, then converted (and
quantized for int8) for the engine.

Only the video tower is exported: `VideoTower` is a model of its own whose call takes
(pixel_values, frame_padding_mask) and returns `encode_video`'s outputs, named as its
keys. The export goes through our `export.export` (ONNX from the running backend, with a
free batch where the backend's exporter gives one, else a batch of 1 that the runners loop
over).

    OpenVINO     float32 / bfloat16: the ONNX model converted to OpenVINO's IR (the
                 precision is chosen when it is compiled); int8: NNCF's post-training
                 quantization in transformer mode, calibrated on real clips.
    ONNX Runtime float32: the ONNX model; int8: ONNX Runtime's dynamic int8 (weights
                 int8 per output channel, activations quantized per call: no calibration).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

ONNX_FILE = "video_tower.onnx"
OPENVINO_FILE = "video_tower.xml"  # and its .bin
# Backends whose ONNX exporter gives a free batch dimension; the others export a batch of 1.
FREE_BATCH_BACKENDS = ("tensorflow",)


def version(package: str) -> str:
    return importlib.metadata.version(package)


def output_keys(backbone: keras.Model) -> list[str]:
    """`encode_video`'s keys, sorted (the export's output order)."""
    keys = ["spatial_features", "spatiotemporal_features"]
    if backbone.is_multimodal:
        keys += ["frame_embeddings", "vision_embeddings"]
    return sorted(keys)


class VideoTower(keras.Model):
    """`backbone.encode_video` as a model of its own: what the engines run.

    Args:
        backbone: `VideoPrismBackbone`. Its weights are shared, not copied.
    """

    def __init__(self, backbone: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        # Not `self.backbone`: `export` reads a model with a backbone as a classifier.
        self.tower = backbone
        self.output_keys = output_keys(backbone)
        self.export_output_names = self.output_keys  # `export` names the ONNX outputs so
        self.built = backbone.built  # nothing of its own to build (Keras' exporters ask)

    def call(self, pixel_values: Any, frame_padding_mask: Any) -> list:
        out = self.tower.encode_video(pixel_values, frame_padding_mask=frame_padding_mask)
        return [out[key] for key in self.output_keys]


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

    backend = keras.backend.backend()
    batch = None if backend in FREE_BATCH_BACKENDS else 1
    tower = VideoTower(backbone)
    export(tower, path, format="onnx", input_signature=input_signature(backbone, shape, batch))
    return path


def calibration_data(clips: np.ndarray) -> list:
    """One (pixels, mask) input per clip, batch of 1 (what any export takes)."""
    mask = np.ones((1, clips.shape[1]), "int32")
    return [(np.ascontiguousarray(clip[None], dtype=np.float32), mask) for clip in clips]


def build_openvino(onnx: Path, folder: Path, precision: str, clips: np.ndarray | None) -> dict:
    """OpenVINO's IR of `onnx` in `folder` (NNCF int8 calibrated on `clips` for int8)."""
    import openvino as ov

    model = ov.convert_model(str(onnx))
    details: dict[str, Any] = {"versions": {"openvino": version("openvino")}}
    if precision == "int8":
        import nncf

        quantized = nncf.quantize(
            model, nncf.Dataset(calibration_data(clips)), model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(clips),
        )  # fmt: skip
        model = quantized
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
        quantize_dynamic(str(onnx), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        onnx.unlink()
        quantized.rename(onnx)
    return details
