"""Which engine runs a command's model (--engine, --dtype): resolved once from the flags,
before the model loads, in the CLI's words; the `Encoder` every part of the command shares
built from that choice, and the choice said once on stderr.

The engines themselves, and "auto"'s preference, are `videoprism_keras.engine`'s: this module
only reads the flags into its arguments and its errors into the flags' words.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from ..constants import CLI_DTYPE_PRECISION
from .parser import UsageError

if TYPE_CHECKING:
    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder


def precision(dtype: str | None) -> str:
    """The precision an engine is asked for by --dtype (None: float32)."""
    return CLI_DTYPE_PRECISION[dtype or "float32"]


def resolve(engine: str | None, dtype: str | None, backend: str | None = None) -> tuple[str, str]:
    """(engine, why) that runs --dtype on this backend: --engine (None or "auto": the
    fastest installed, `engine.choose_engine`), or a usage error in the flags' words (a
    named engine that is not installed: `extras.MissingExtra`, naming what installs it)."""
    import keras

    from ..engine import choose_engine

    backend = backend or keras.backend.backend()
    asked = engine or "auto"
    try:
        return choose_engine(asked, precision(dtype), backend)
    except ValueError as err:
        raise usage_error(asked, dtype or "float32", backend, err) from None


def usage_error(engine: str, dtype: str, backend: str, err: Exception) -> UsageError:
    """`choose_engine`'s refusal in the CLI's words: the flags, and what would install or
    allow the path asked for."""
    said = str(err).split(" Received:")[0].rstrip(".")  # the flags below say what was given
    said = re.sub(r"engine='(\w+)'", r"--engine \1", said)
    return UsageError(f"--engine {engine} --dtype {dtype} on the {backend} backend: {said}")


def make_encoder(model: VideoPrismBackbone, engine: str, dtype: str | None,
                 why: str | None = None, auto: bool = False) -> Encoder:  # fmt: skip
    """The `Encoder` of `model` on `engine` (resolved) at --dtype's precision. On Keras the
    model is already in that precision (`ModelOptions.load` loads or quantizes it so); the
    others take the float32 model. `auto`: `engine` is auto's choice, and the Encoder is
    made with "auto" (which chooses the same), so that its float32 may fall back to Keras
    where the engine's does not match the model. `why`: the choice, said on stderr with
    what it runs (`Encoder.describe`)."""
    from ..runtime import Encoder

    if engine == "keras":
        encoder = Encoder(model)  # the model's own precision
    else:
        encoder = Encoder(model, engine="auto" if auto else engine, precision=precision(dtype))
    if why is not None:
        print(f"videoprism: engine: {encoder.describe()} ({why})", file=sys.stderr)
    return encoder
