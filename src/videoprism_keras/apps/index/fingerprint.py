"""Which model an index's embeddings come from, known by content rather than by name.

A preset names a model by a path or a name, and the file behind a path can be replaced
by other weights of the same shapes: the embeddings of the two models then share an
index and search each other's space (a video no longer finds itself). So an index
records a hash of the weights it was built with, and `ClipTable.check_settings` refuses
clips of a model whose weights hash differently, and of a model whose configuration
differs where it shapes the embeddings (the soft cap, the layers…; not its name, dtype
or dropout, which the dtype setting and training concern).

The hash is of the loaded weights, not of the checkpoint file: it is the same whatever
the preset's form (a name, an .npz, a Keras preset folder, a model built in Python),
and hashing the weights costs what reading the file once would (under a second for the
largest model).
"""

from __future__ import annotations

# The hash and the configuration's identity are the model's (engines key on them too).
from ...model.fingerprint import NOT_IDENTITY, weights_sha256

__all__ = ["CONFIG_KEY", "NOT_IDENTITY", "WEIGHTS_KEY", "model_difference", "weights_sha256"]

WEIGHTS_KEY = "weights_sha256"  # the index's meta key for the weights' hash
CONFIG_KEY = "backbone"  # the index's meta key for the model's configuration


def model_difference(recorded: dict, settings: dict) -> str | None:
    """What differs between the model an index records (its meta) and the one about to
    write (`settings`), in words; None when nothing that both record does."""
    held, given = recorded.get(WEIGHTS_KEY), settings.get(WEIGHTS_KEY)
    if held and given and held != given:
        return f"its weights differ (sha256 {held[:12]}… recorded, {given[:12]}… now)"
    held, given = recorded.get(CONFIG_KEY) or {}, settings.get(CONFIG_KEY) or {}
    differ = sorted(k for k in set(held) & set(given) - NOT_IDENTITY if held[k] != given[k])
    if differ:
        return "its configuration differs (" + ", ".join(
            f"{k} {held[k]!r} recorded, {given[k]!r} now" for k in differ) + ")"  # fmt: skip
    return None
