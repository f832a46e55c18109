"""Integrated execution engines for the video tower: OpenVINO and ONNX Runtime, exported,
quantized and compiled by us, cached on disk (docs/engines.md).

One stage per module: `choice` (which engine runs a precision), `artefacts` (the on-disk
cache), `build` (export, conversion, quantization), `openvino_runner` and
`onnxruntime_runner` (running an artefact), `session` (an artefact per clip shape for one
model). `runtime.Encoder(engine=…, precision=…)` is how the library and the CLI use them.
"""

from .choice import choose_engine

__all__ = ["choose_engine"]
