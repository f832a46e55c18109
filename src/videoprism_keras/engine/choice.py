"""Which engine runs a precision: "auto" resolved by what is installed and the Keras backend.

Importing this module loads nothing heavy (no Keras unless the backend is asked for), so
the CLI can check `--engine` and `--dtype` before the model loads.
"""

from __future__ import annotations

from ..constants import ENGINE_PREFERENCE, ENGINES, PRECISIONS
from ..extras import EXPORTERS, install_line, missing, require

# What each integrated engine needs beyond the backend's ONNX exporter (extras.EXPORTERS).
ENGINE_PACKAGES = {"openvino": ("openvino",), "onnxruntime": ("onnxruntime",)}
# What its int8 needs beyond that: NNCF quantizes for OpenVINO; ONNX Runtime quantizes
# (dynamic int8) with its own tools.
QUANTIZER_PACKAGES = {"openvino": ("nncf",), "onnxruntime": ()}
LABELS = {"keras": "Keras", "openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


def check_names(engine: str, precision: str) -> None:
    """`ValueError` ("Received: …") for an engine or precision that does not exist."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}. Received: engine={engine!r}")
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS}. Received: precision={precision!r}"
        )


def needs(engine: str, precision: str, backend: str) -> tuple[str, ...]:
    """The pip packages (extras.PACKAGES' names) `engine` needs for `precision` here."""
    if engine == "keras":
        return ()
    quantizer = QUANTIZER_PACKAGES[engine] if precision == "int8" else ()
    return (*ENGINE_PACKAGES[engine], *quantizer, *EXPORTERS[("onnx", backend)])


def refusal(engine: str, precision: str, backend: str) -> str | None:
    """Why `engine` cannot run `precision` on `backend` whatever is installed, or None."""
    if engine == "onnxruntime" and precision == "bfloat16":
        return ("ONNX Runtime's CPU provider computes a float32 model's matrix products in "
                "float32 only: use engine='openvino' (or 'keras') for bfloat16")  # fmt: skip
    return None


def choose_engine(
    engine: str = "auto", precision: str = "float32", backend: str | None = None
) -> tuple[str, str]:
    """The engine that runs `precision`, and why, in words.

    "auto" takes the first of `ENGINE_PREFERENCE[precision]` that is installed and allowed
    on the Keras `backend`; a named engine is checked the same way.

    Args:
        engine: str. One of `ENGINES`. Defaults to `"auto"`.
        precision: str. One of `PRECISIONS`. Defaults to `"float32"`.
        backend: str or None. The Keras backend. Defaults to `None`: Keras' configured one.

    Returns:
        (engine, reason): "keras", "openvino" or "onnxruntime", and a sentence saying why.

    Raises:
        ValueError: an unknown engine or precision, or one that cannot run here
            ("Received: engine=…, precision=…"), naming what to install or change.
        extras.MissingExtra: a named engine whose packages are not installed.
    """
    check_names(engine, precision)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    received = f"Received: engine={engine!r}, precision={precision!r} on the {backend} backend"
    if engine != "auto":
        why = refusal(engine, precision, backend)
        if why:
            raise ValueError(f"{why}. {received}")
        what = f"Encoder(engine={engine!r}, precision={precision!r})"
        require(needs(engine, precision, backend), what, f"--engine {engine}")
        return engine, f"{LABELS[engine]} {precision}, as asked"
    skipped = []
    for candidate in ENGINE_PREFERENCE[precision]:
        why = refusal(candidate, precision, backend)
        absent = missing(needs(candidate, precision, backend))
        if why is None and not absent:
            passed = f" ({'; '.join(skipped)})" if skipped else ""
            return candidate, f"{LABELS[candidate]}: auto's first choice for {precision}{passed}"
        skipped.append(f"{LABELS[candidate]}: " + (why or f"{', '.join(absent)} not installed"))
    raise ValueError(
        f"no engine here runs {precision}: {'; '.join(skipped)}. "
        f"{install_line(['openvino', 'nncf'])} gives OpenVINO. {received}"
    )
