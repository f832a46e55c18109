"""The video tower on ONNX Runtime's CPU provider: one session, made once.

float32 runs the exported model as it is; int8 runs its dynamic int8 (the matrix products'
weights int8 per output channel, their activations quantized on each call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import ONNX_FILE
from .runners import per_batch, threads


class OnnxRuntimeRunner:
    """`runner(pixels, mask)` → `encode_video`'s dict of float32 arrays.

    Args:
        folder: the artefact's folder.
        keys: the outputs' names (encode_video's keys).
    """

    def __init__(self, folder: Path, keys: list[str]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads()
        options.inter_op_num_threads = 1  # one graph, run op after op
        options.log_severity_level = 3  # its warnings about unused initialisers are noise
        self.session = ort.InferenceSession(
            str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.names = [o.name for o in self.session.get_outputs()]
        if sorted(self.names) != sorted(keys):
            raise AssertionError(f"the artefact's outputs {self.names} are not {keys}")
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self._run = per_batch(self._infer, self.fixed_batch)

    def _infer(self, pixels: np.ndarray, mask: np.ndarray) -> dict:
        outs = self.session.run(self.names, dict(zip(self.inputs, (pixels, mask), strict=True)))
        return {
            name: np.asarray(out, np.float32) for name, out in zip(self.names, outs, strict=True)
        }

    def __call__(self, pixels: np.ndarray, mask: np.ndarray) -> dict:
        return self._run(pixels, mask)

    def note(self, precision: str) -> str:
        return "dynamic int8 (weights per channel)" if precision == "int8" else "computes in f32"
