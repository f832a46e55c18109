"""The video tower on OpenVINO: the artefact's IR compiled once for this CPU.

The precision is OpenVINO's `INFERENCE_PRECISION_HINT`: f32 for float32 (exact), bf16 for
bfloat16 (where the CPU has no bfloat16 instructions OpenVINO computes in f32, and
`describe` says so), OpenVINO's default for int8 (the quantized matrix products in int8,
the other ops in what the CPU does best). Latency first: one clip at a time on every core
this process may use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import OPENVINO_FILE
from .runners import one_clip, openvino_core, per_batch, threads

HINTS = {"float32": "f32", "bfloat16": "bf16"}


class OpenVINORunner:
    """`runner(pixels, mask)` → `encode_video`'s dict of float32 arrays.

    Args:
        folder: the artefact's folder.
        precision: "float32", "bfloat16" or "int8".
        keys: the outputs' names (encode_video's keys).
        config: OpenVINO CPU settings the artefact was checked under (its meta.json's
            `openvino_config`, `build.checked_config`). Defaults to `None`: none.
    """

    def __init__(self, folder: Path, precision: str, keys: list[str], config: dict | None = None):
        core = openvino_core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads(),
            **(config or {}),
        }
        if precision in HINTS:
            config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        model = one_clip(core.read_model(folder / OPENVINO_FILE))
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = {}
        for output in self.compiled.outputs:
            (name,) = set(output.get_names()) & set(keys)  # the export named them
            self.outputs[name] = output
        batch = self.compiled.inputs[0].get_partial_shape()[0]
        self.fixed_batch = None if batch.is_dynamic else batch.get_length()
        self.runs = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.bf16_cpu = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.snippets_off = config.get("SNIPPETS_MODE") == "DISABLE"
        self._run = per_batch(self._infer, self.fixed_batch)

    def _infer(self, pixels: np.ndarray, mask: np.ndarray) -> dict:
        result = self.request.infer([pixels, mask])
        return {name: np.array(result[output], np.float32) for name, output in self.outputs.items()}

    def __call__(self, pixels: np.ndarray, mask: np.ndarray) -> dict:
        return self._run(pixels, mask)

    def note(self, precision: str) -> str:
        """How it computes, in words."""
        if precision == "bfloat16" and self.runs != "bf16":
            note = f"this CPU has no bfloat16 instructions: OpenVINO computes in {self.runs}"
        elif precision == "int8":
            note = f"int8 matrix products, the other ops in {self.runs}"
        else:
            note = f"computes in {self.runs}"
        if self.snippets_off:
            note += " (generated kernels off: they did not match Keras on this model)"
        return note
