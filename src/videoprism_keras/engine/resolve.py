"""An Encoder's engine and precision for one model: what was asked, checked against what
the model is (its dtype policy, whether Keras quantized it), before any work starts."""

from __future__ import annotations

import keras

from ..model.quantization import model_precision
from .choice import LABELS, check_names, choose_engine


def resolve(model: keras.Model, engine: str, precision: str | None) -> tuple[str, str, str]:
    """(engine, precision, reason) for `Encoder(model, engine, precision)`.

    precision None: the model's own (engine "auto" is then Keras, which runs the model as
    it is). On "keras" the model must already compute in `precision`; the other engines
    build their precision from a float32 model. "auto" with a model that is not float32
    can only be Keras.
    """
    check_names(engine, "float32" if precision is None else precision)
    own = model_precision(model)
    if precision is None:
        if engine in ("auto", "keras"):
            return "keras", own, f"Keras, the model's own {own} (no precision asked)"
        precision = own
    received = f"Received: engine={engine!r}, precision={precision!r} for a model in {own}"
    if engine == "auto" and own != "float32":
        if own != precision:
            raise ValueError(
                f"the model computes in {own}: load it in float32 for an engine to build "
                f"{precision} from it. {received}"
            )
        return "keras", precision, f"Keras: the model is already {own}"
    chosen, reason = choose_engine(engine, precision, keras.backend.backend())
    if chosen == "keras" and own != precision:
        what = ("call model.quantize('int8') first" if precision == "int8" else
                f"load it with dtype={precision!r}")  # fmt: skip
        raise ValueError(
            f"engine='keras' runs the model as it is, and it computes in {own}: {what}, or "
            f"ask another engine. {received}"
        )
    if chosen != "keras" and own != "float32":
        raise ValueError(
            f"{LABELS[chosen]} builds its {precision} from a float32 model, and this one "
            f"computes in {own}: load it in float32, not quantized. {received}"
        )
    return chosen, precision, reason
