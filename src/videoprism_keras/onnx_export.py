"""Writing an ONNX file from each Keras backend with a free batch: the one module that
knows each backend's ONNX exporter (`export.export` calls `write_onnx`).

    backend      exporter                          a None dimension becomes
    JAX          jax2onnx                          a symbolic size ("batch" for axis 0)
    PyTorch      torch.onnx (TorchScript tracer)   a dynamic axis ("batch" for axis 0)
    TensorFlow   routed: JAX in a child process    as JAX

JAX and PyTorch are called directly rather than through `keras.Model.export`, so that
the outputs come out flattened in one order on both (a dict's keys sorted, as
`keras.tree.flatten` orders them) and are named by their keys; Keras' PyTorch path also
flattens a dict in insertion order. PyTorch's dynamo exporter is not used: it
specializes the batch of these graphs (Keras' exporter falls back to TorchScript for
dynamic shapes too).

TensorFlow's exporter (tf2onnx) needs many times the weights' size in memory (the base
model's export was killed at 13 GB), so from TensorFlow the model is saved to a
temporary `.keras` file and exported by `python -m videoprism_keras.onnx_export` under
`KERAS_BACKEND=jax`, from the same weights; the artefact is the same as JAX's. The model
must therefore be one Keras can save and load (our models are; a custom wrapper must be
a module-level class with `get_config`). benchmarks/README.md ("Export memory") has
each backend's peak memory for the base model.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import keras

from .constants import ONNX_ROUTE_BACKEND

_UNLOADABLE = 3  # the child's exit status when the saved model does not load there


def write_onnx(
    model: keras.Model,
    path: str | os.PathLike,
    signature: Any,
    single_name: str = "output",
    opset_version: int | None = None,
) -> str | None:
    """Writes `model` called on `signature` (a list of positional inputs: specs, or dicts
    of specs) as one self-contained ONNX file at `path`. Outputs are named by their dict
    keys, or `single_name` for a single tensor.

    Returns:
        A sentence saying how it was exported when not in this process (TensorFlow's
        route), else None.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _routed(model, path, signature, single_name, opset_version)
    call, names = _flat_call(model, signature, single_name)
    if backend == "jax":
        _jax(call, path, signature, opset_version)
    elif backend == "torch":
        _torch(model, call, path, signature, opset_version)
    else:
        raise ValueError(f"ONNX export needs the JAX, TensorFlow or PyTorch backend. "
                         f"Received: KERAS_BACKEND={backend}")  # fmt: skip
    _name_outputs(path, names)
    _drop_unused_files(path)
    return None


def _flat_call(model: keras.Model, signature: Any, single_name: str) -> tuple[Callable, list]:
    """`model` as a function of the signature's flat inputs returning a flat tuple, and
    the output names it fills in when first traced."""
    names: list[str] = []

    def call(*flat: Any) -> tuple:
        args = keras.tree.pack_sequence_as(signature, list(flat))
        out = model(*args, training=False)
        leaves = keras.tree.flatten_with_path(out)
        if not names:
            names.extend("/".join(map(str, p)) or single_name for p, _ in leaves)
        return tuple(leaf for _, leaf in leaves)

    return call, names


def _specs(signature: Any) -> list[tuple[str, tuple, str]]:
    """(name, shape with a string for each None, dtype) of each flat input."""
    specs = []
    for i, spec in enumerate(keras.tree.flatten(signature)):
        shape = tuple(
            ("batch" if axis == 0 else f"dim_{i}_{axis}") if size is None else int(size)
            for axis, size in enumerate(spec.shape)
        )
        dtype = keras.backend.standardize_dtype(spec.dtype)
        specs.append((getattr(spec, "name", None) or f"input_{i}", shape, dtype))
    return specs


def _jax(call: Callable, path: str | os.PathLike, signature: Any, opset: int | None) -> None:
    import jax
    import jax2onnx
    import numpy as np

    specs = _specs(signature)
    inputs = [jax.ShapeDtypeStruct(shape, np.dtype(dtype)) for _, shape, dtype in specs]
    options = {} if opset is None else {"opset": opset}
    jax2onnx.to_onnx(call, inputs=inputs, input_names=[name for name, _, _ in specs],
                     return_mode="file", output_path=os.fspath(path), **options)  # fmt: skip


def _torch(model: keras.Model, call: Callable, path: str | os.PathLike, signature: Any,
           opset: int | None) -> None:  # fmt: skip
    import torch

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model  # a submodule: its weights are the graph's initializers

        def forward(self, *flat: Any) -> tuple:
            return call(*flat)

    specs = _specs(signature)
    # Traced at batch 1 (half the activations' memory of 2); the tests run the artefact
    # at batch 1 and 3, so no size-1 axis was taken for a broadcast one.
    samples = tuple(
        keras.ops.ones(tuple(1 if isinstance(s, str) else s for s in shape), dtype=dtype)
        for _, shape, dtype in specs
    )
    dynamic = {name: {axis: s for axis, s in enumerate(shape) if isinstance(s, str)}
               for name, shape, _ in specs}  # fmt: skip
    module = Flat().eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns at every Python int taken from a shape: the symbolic batch
        # stays symbolic because each reshape keeps -1 on the batch axis.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(module, samples, os.fspath(path), input_names=[n for n, _, _ in specs],
                          dynamic_axes={k: v for k, v in dynamic.items() if v},
                          opset_version=opset, dynamo=False, do_constant_folding=True)  # fmt: skip


def _routed(model: keras.Model, path: str | os.PathLike, signature: Any, single_name: str,
            opset: int | None) -> str:  # fmt: skip
    """The model saved to a temporary .keras file and exported by a child process under
    `ONNX_ROUTE_BACKEND`; its error, if any, raised here."""
    with tempfile.TemporaryDirectory(prefix="videoprism-onnx-") as folder:
        saved = os.path.join(folder, "model.keras")
        try:
            model.save(saved)
        except Exception as err:  # e.g. a custom wrapper without get_config
            brief = " ".join(str(err).split())[:200]
            raise ValueError(
                f"exporting ONNX from the TensorFlow backend runs under "
                f"KERAS_BACKEND={ONNX_ROUTE_BACKEND} in a child process, from the model saved "
                f"to a .keras file, and {type(model).__name__} could not be saved ({brief}). "
                f"Received: model={type(model).__name__}; give it a get_config, or set "
                f"KERAS_BACKEND={ONNX_ROUTE_BACKEND}"
            ) from err
        request = {"model": saved, "path": os.fspath(path), "signature": _encode(signature),
                   "single_name": single_name, "opset": opset,
                   "module": type(model).__module__}  # fmt: skip
        request_file = os.path.join(folder, "request.json")
        with open(request_file, "w") as f:
            json.dump(request, f)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "KERAS_BACKEND": ONNX_ROUTE_BACKEND,
               "PYTHONPATH": os.pathsep.join(paths)}  # fmt: skip
        done = subprocess.run([sys.executable, "-m", __name__, request_file], env=env,
                              capture_output=True, text=True)  # fmt: skip
    if done.returncode == _UNLOADABLE:
        raise ValueError(
            f"exporting ONNX from the TensorFlow backend runs under "
            f"KERAS_BACKEND={ONNX_ROUTE_BACKEND} in a child process, from the model saved to a "
            f".keras file, which could not load it back: {done.stderr.strip().splitlines()[-1]}. "
            f"Received: model={type(model).__name__}; make it a module-level class with "
            f"get_config (registered with keras.saving.register_keras_serializable), or set "
            f"KERAS_BACKEND={ONNX_ROUTE_BACKEND}"
        )
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(
            f"the ONNX export under KERAS_BACKEND={ONNX_ROUTE_BACKEND} (the TensorFlow "
            f"backend's route) failed (exit {done.returncode}):\n{tail}"
        )
    return (
        f"exported under KERAS_BACKEND={ONNX_ROUTE_BACKEND} in a child process, from the "
        "same weights: TensorFlow's ONNX exporter needs many times the weights' memory"
    )


def _encode(signature: Any) -> Any:
    """The signature as JSON: specs as {"shape", "dtype", "name"}, in its lists/dicts."""
    if isinstance(signature, dict):
        return {"dict": {k: _encode(v) for k, v in signature.items()}}
    if isinstance(signature, (list, tuple)):
        return {"list": [_encode(v) for v in signature]}
    shape = [None if s is None else int(s) for s in signature.shape]
    dtype = keras.backend.standardize_dtype(signature.dtype)
    return {"spec": {"shape": shape, "dtype": dtype, "name": getattr(signature, "name", None)}}


def _decode(data: dict) -> Any:
    if "dict" in data:
        return {k: _decode(v) for k, v in data["dict"].items()}
    if "list" in data:
        return [_decode(v) for v in data["list"]]
    spec = data["spec"]
    return keras.InputSpec(shape=tuple(spec["shape"]), dtype=spec["dtype"], name=spec["name"])


def _name_outputs(path: str | os.PathLike, names: list[str]) -> None:
    """Gives an ONNX graph's outputs their names (each exporter makes up its own, such as
    "div_out_8"), through Identity nodes, and saves it as one file."""
    import onnx

    graph_model = onnx.load(os.fspath(path))
    graph = graph_model.graph
    if len(graph.output) != len(names):
        raise AssertionError(f"the export has {len(graph.output)} outputs, expected {names}")
    for output, name in zip(graph.output, names, strict=True):
        if output.name != name:
            graph.node.append(onnx.helper.make_node("Identity", [output.name], [name]))
            output.name = name
    onnx.save(graph_model, os.fspath(path))


def _drop_unused_files(path: str | os.PathLike) -> None:
    """Deletes what the exporter left beside the artefact in its staging folder when the
    artefact references none of it (jax2onnx writes a large model's weights to a `.data`
    file, which `_name_outputs` then saves inline: the file would only take space)."""
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


def _main(request_file: str) -> None:
    """The child's side of the route: load the saved model, export it here."""
    with open(request_file) as f:
        request = json.load(f)
    from .model.kernels import portable

    try:
        # The model's class registers itself when its module is imported (Keras imports
        # only its own packages' modules when loading); one not importable here may still
        # be known (ours are), else loading says so.
        with contextlib.suppress(ImportError):
            importlib.import_module(request.get("module") or __name__)
        model = keras.saving.load_model(request["model"], compile=False)
    except Exception as err:
        print(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}", file=sys.stderr)
        sys.exit(_UNLOADABLE)
    with portable():
        write_onnx(model, request["path"], _decode(request["signature"]),
                   request["single_name"], request["opset"])  # fmt: skip


if __name__ == "__main__":
    _main(sys.argv[1])
