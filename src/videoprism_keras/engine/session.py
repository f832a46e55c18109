"""The video tower of one model on an integrated engine: an artefact per clip shape, found in
the cache or built on first use, and a runner compiled once per artefact.

`runtime.Encoder` makes one of these for engine "openvino" or "onnxruntime"; the clip
shape (T, H, W) is known at the first `video()` call of that shape (or from the
`calibration` clips, which are then built for at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..constants import CALIBRATION_CLIPS
from ..model.fingerprint import identity_config, weights_sha256
from ..model.inputs import check_pixel_values
from . import artefacts, build
from .choice import LABELS

# The pip package whose version each engine's artefact depends on.
ENGINE_PACKAGE = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


def clip_shape(model: keras.Model, pixels: np.ndarray) -> tuple[int, int, int]:
    """(T, H, W) of (B, T, H, W, C) pixels ((B, T, C, H, W) channels first)."""
    if model.data_format == "channels_first":
        return pixels.shape[1], pixels.shape[3], pixels.shape[4]
    return pixels.shape[1], pixels.shape[2], pixels.shape[3]


def check_calibration(model: keras.Model, calibration: Any) -> np.ndarray:
    """`calibration` as (N, T, H, W, C) float32 clips in [0, 1], or a `ValueError`."""
    clips = np.asarray(calibration)
    channels = model.frame_shape[-1]
    layout = "(N, T, C, H, W)" if model.data_format == "channels_first" else "(N, T, H, W, C)"
    axis = 2 if model.data_format == "channels_first" else 4
    fits = clips.ndim == 5 and clips.shape[0] >= 1 and clips.shape[axis] == channels
    if fits:
        _, height, width = clip_shape(model, clips)
        fits = min(clips.shape) > 0 and height % model.patch_size == width % model.patch_size == 0
    if not fits:
        raise ValueError(
            f"calibration must be {layout} clips (at least one, {channels} channels, frames "
            f"a multiple of patch_size={model.patch_size} on both sides), the clips the "
            f"engine will embed. Received: calibration of shape {clips.shape}"
        )
    try:
        return check_pixel_values(clips)
    except ValueError as err:
        raise ValueError(f"calibration: {err}") from None


class EngineVideo:
    """`encode_video` of `model` on `engine`: `self(pixels, mask)` → dict of float32 arrays.

    Args:
        model: a float32 `VideoPrismBackbone` (checked by the caller).
        engine: "openvino" or "onnxruntime".
        precision: "float32", "bfloat16" (OpenVINO) or "int8".
        calibration: (N, T, H, W, C) clips for OpenVINO int8, or None (the first clips).
        cache_dir: the artefacts' folder, or None for `hub.cache_root()/"engines"`.
    """

    def __init__(self, model, engine, precision, calibration=None, cache_dir=None):
        self.model, self.engine, self.precision = model, engine, precision
        self.root = artefacts.cache_folder(cache_dir)
        self.keys = build.output_keys(model)
        self.calibration = None if calibration is None else check_calibration(model, calibration)
        self.weights = weights_sha256(model)
        self.runners: dict[tuple, Any] = {}
        self.artefact: str | None = None  # the key of the artefact last used
        self.meta: dict | None = None
        self.built = 0  # artefacts this object built (not found in the cache)
        if self.calibration is not None:  # the shape is known: build now, not mid-run
            self.runner(clip_shape(model, self.calibration), self.calibration)

    def __call__(self, pixels: np.ndarray, mask: np.ndarray) -> dict:
        return self.runner(clip_shape(self.model, pixels), pixels)(pixels, mask)

    def inputs(self, shape: tuple[int, int, int]) -> dict[str, Any]:
        """What the artefact for (T, H, W) clips depends on: its key's inputs."""
        versions = {"engine": build.version(ENGINE_PACKAGE[self.engine])}
        calibration = None
        if self.engine == "openvino" and self.precision == "int8":
            versions["nncf"] = build.version("nncf")
            calibration = "the first clips embedded"
            if self.calibration is not None:
                digest = hashlib.sha256(np.ascontiguousarray(self.calibration).data).hexdigest()
                calibration = f"given clips, sha256 {digest}"
        return {"weights_sha256": self.weights, "config": identity_config(self.model),
                "clip": list(shape), "data_format": self.model.data_format,
                "precision": self.precision, "engine": self.engine, "versions": versions,
                "calibration": calibration}  # fmt: skip

    def runner(self, shape: tuple[int, int, int], clips: np.ndarray):
        """The runner for (T, H, W) clips: built (and cached) with `clips` as calibration
        if need be."""
        if shape in self.runners:
            self.artefact, self.meta = self.runners[shape][1:]
            return self.runners[shape][0]
        if self.calibration is not None and shape != clip_shape(self.model, self.calibration):
            raise ValueError(
                f"this Encoder's int8 was calibrated on clips of (frames, height, width) "
                f"{clip_shape(self.model, self.calibration)}; embed clips of that shape, or "
                f"make an Encoder with calibration clips of the new one. Received: clips of {shape}"
            )
        calibration = self.calibration if self.calibration is not None else clips
        calibration = calibration[:CALIBRATION_CLIPS]
        folder, meta = artefacts.cached(
            self.root, self.inputs(shape), lambda staging: self.build(staging, shape, calibration)
        )
        if self.engine == "openvino":
            from .openvino_runner import OpenVINORunner

            run = OpenVINORunner(folder, self.precision, self.keys)
        else:
            from .onnxruntime_runner import OnnxRuntimeRunner

            run = OnnxRuntimeRunner(folder, self.keys)
        self.runners[shape] = (run, meta["key"], meta)
        self.artefact, self.meta = meta["key"], meta
        return run

    def build(self, staging: Path, shape: tuple[int, int, int], clips: np.ndarray) -> dict:
        """Writes the artefact for (T, H, W) clips into `staging`; its meta's details."""
        onnx = staging / build.ONNX_FILE
        with contextlib.redirect_stdout(io.StringIO()):  # the exporters' and NNCF's chatter
            build.export_onnx(self.model, onnx, shape)
            if self.engine == "openvino":
                quantized = self.precision == "int8"
                details = build.build_openvino(onnx, staging, self.precision, clips)
                os.remove(onnx)  # the IR holds it
            else:
                quantized = False
                details = build.build_onnxruntime(onnx, staging, self.precision)
        details["versions"]["keras"] = keras.__version__
        details["versions"]["backend"] = keras.backend.backend()
        details["calibration_used"] = f"{len(clips)} clips" if quantized else None
        self.built += 1
        return details

    def describe(self) -> str:
        """One line: the engine, its version, the precision, the artefact."""
        label = f"{LABELS[self.engine]} {build.version(ENGINE_PACKAGE[self.engine])}"
        how = ""
        if self.engine == "openvino" and self.precision == "int8":
            used = (self.meta or {}).get("calibration_used")
            how = f" (NNCF, {used})" if used else " (NNCF, calibrated on the first clips)"
        if self.engine == "onnxruntime" and self.precision == "int8":
            how = " (dynamic)"
        runners = [entry[0] for entry in self.runners.values()]
        note = f", {runners[-1].note(self.precision)}" if runners else ""
        where = f" — artefact {self.artefact[:12]}…" if self.artefact else " — built on first use"
        return f"{label} {self.precision}{how}{note}{where}"
