"""The optional packages: the extra of videoprism-keras that installs each, and the check
that names that extra when one is missing, before any work starts.

Checks look for a package (`importlib.util.find_spec`) without importing it: cheap enough to
run before Keras is imported, so that a command fails in its first second, not after the
model has run. Importing this module loads nothing else.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable

# pip name → (the module it installs, the smallest extra that brings it). pyproject.toml's
# [project.optional-dependencies] is the other side of this table.
PACKAGES = {
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "av": ("av", "video"),
    "pillow": ("PIL", "video"),
    "tqdm": ("tqdm", "video"),
    "sentencepiece": ("sentencepiece", "text"),
    "huggingface_hub": ("huggingface_hub", "hub"),
    "kagglehub": ("kagglehub", "hub"),
    "modelscope": ("modelscope", "hub"),
    "matplotlib": ("matplotlib", "plot"),
    "pyarrow": ("pyarrow", "apps"),
    "lancedb": ("lancedb", "apps"),
    "ray[data]": ("ray", "ray"),
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "python-multipart": ("python_multipart", "serve"),
    "onnx": ("onnx", "export"),
    "jax2onnx": ("jax2onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("nncf", "openvino"),
    # PySceneDetect with OpenCV's build without GUI libraries (servers have none).
    "scenedetect-headless": ("scenedetect", "shots"),
}

# The extras the `cli` extra holds: the CLI asks for `cli` instead of any of them, so that one
# install gives every command. An extra that holds another makes it redundant in a message.
CLI_PARTS = ("jax", "video", "text", "hub", "plot", "apps")
INCLUDES = {"cli": CLI_PARTS, "ray": ("cli", *CLI_PARTS), "serve": ("cli", *CLI_PARTS),
            "openvino": ("export",)}  # fmt: skip
# The order extras are named in a message (pip does not care; people read it).
ORDER = ("cli", "jax", "torch", "tensorflow", "video", "text", "hub", "plot", "apps", "serve",
         "ray", "export", "openvino", "shots")  # fmt: skip

# (export format, backend) → what Keras' exporter needs beyond the backend: the ONNX
# exporter of each backend (and onnx, which names the artefact's outputs; TensorFlow's ONNX
# goes through JAX's, `onnx_export`); a SavedModel from JAX goes through jax2tf, i.e.
# TensorFlow.
EXPORTERS = {("onnx", "jax"): ("onnx", "jax2onnx"), ("onnx", "tensorflow"): ("onnx", "jax2onnx"),
             ("onnx", "torch"): ("onnx", "onnxscript"),
             ("tf_saved_model", "jax"): ("tensorflow",)}  # fmt: skip

DISTRIBUTION = "videoprism-keras"


class MissingExtra(ImportError):
    """An optional package is not installed. `str()` names the library's extra,
    `cli_message` the CLI's (`cli`, which holds the library's smaller ones)."""

    def __init__(self, message: str, cli_message: str):
        super().__init__(message)
        self.cli_message = cli_message


def installed(package: str) -> bool:
    """Whether pip package `package` (a key of PACKAGES) can be imported; imports nothing."""
    module = PACKAGES[package][0]
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def missing(packages: Iterable[str]) -> list[str]:
    """The packages of `packages` (pip names, keys of PACKAGES) that are not installed."""
    return [p for p in dict.fromkeys(packages) if not installed(p)]


def install_line(packages: Iterable[str], cli: bool = False) -> str:
    """`pip install "videoprism-keras[...]"` for the extras that bring `packages` (the CLI's
    `cli` in place of the library's smaller extras when `cli`), and the same from a clone."""
    extras = {PACKAGES[p][1] for p in packages}
    if cli:
        extras = {"cli" if e in CLI_PARTS else e for e in extras}
    extras -= {part for e in extras for part in INCLUDES.get(e, ())}
    names = ",".join(sorted(extras, key=ORDER.index))
    return f'pip install "{DISTRIBUTION}[{names}]" (from a clone: pip install ".[{names}]")'


def message(purpose: str, packages: Iterable[str], cli: bool = False) -> str:
    """ "`purpose` needs X and Y, which are not installed: pip install …"."""
    packages = list(packages)
    names = packages[0] if len(packages) == 1 else ", ".join(packages[:-1]) + f" and {packages[-1]}"
    which = "which is" if len(packages) == 1 else "which are"
    return f"{purpose} needs {names}, {which} not installed: {install_line(packages, cli)}"


def require(packages: Iterable[str], purpose: str, cli_purpose: str | None = None) -> None:
    """Raises `MissingExtra` naming the extra to install if any of `packages` is missing.

    Args:
        packages: pip names, keys of PACKAGES.
        purpose: what needs them, in the library's words ("VideoIndex").
        cli_purpose: the same in the CLI's words, if they differ. Defaults to `purpose`.
    """
    absent = missing(packages)
    if absent:
        raise MissingExtra(
            message(purpose, absent), message(cli_purpose or purpose, absent, cli=True)
        )
