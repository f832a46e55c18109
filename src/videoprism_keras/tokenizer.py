"""`VideoPrismTokenizer`: the official LvT text pipeline, exactly, with SentencePiece alone.

The official `tokenize_texts` canonicalises each text (punctuation → space, lower
case, single spaces, a final "."), encodes it with SentencePiece, prepends BOS
only when the model defines one, adds no EOS, truncates to `max_length` and pads
with id 0; `add_bos=False` drops the BOS and `add_eos=True` appends the model's EOS
(before truncation, so a text cut at `max_length` loses it), as the official
switches do. It reads the model through TensorFlow; this needs only `sentencepiece`
and never imports Keras, so text preprocessing works without a backend.

Our `padding_mask` is 1 for real tokens (the backbone's convention); the official
`paddings` are the opposite (1 for padding).
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import os
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# A preset directory's SentencePiece model and settings (keras_hub's layout too).
# `constants` imports nothing: the tokenizer works without Keras.
from .constants import TOKENIZER_ASSET as ASSET
from .constants import TOKENIZER_CONFIG_FILE as CONFIG
from .extras import require

_SETTINGS = ("max_length", "canonicalize", "add_bos", "add_eos")  # what tokenizer.json may set
_PUNCTUATION = str.maketrans(string.punctuation, " " * len(string.punctuation))


def canonicalize_text(text: str) -> str:
    """The official canonicalisation, e.g. "  Hello,World!! " → "hello world.".

    ASCII punctuation becomes a space, then lower case, runs of (Unicode)
    whitespace collapse to one space, and a "." is appended, in that order. All
    steps are linear in the length of the text.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str; got {type(text).__name__}")
    return " ".join(text.translate(_PUNCTUATION).lower().split()) + "."


def _positive_int(value: Any, name: str) -> int:
    """`value` as an int > 0 (NumPy integers too; bools and floats are mistakes)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return number


def _switch(value: Any, name: str) -> bool:
    """`value` as a bool; anything but a bool (or a NumPy bool) is a mistake."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def _as_texts(texts: str | bytes | Iterable[str | bytes]) -> list[str]:
    """A batch of texts as a list of str; a bare string (or bytes) is a batch of one."""
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if isinstance(texts, str | bytes):
        texts = [texts]
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or a list of strings; got {type(texts).__name__}")
    out = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"texts[{i}] is bytes that are not valid UTF-8: {err}") from None
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str; got {type(text).__name__}: {text!r:.60}")
        out.append(text)
    return out


class VideoPrismTokenizer:
    """Text → `{"token_ids", "padding_mask"}` for `VideoPrismBackbone`, as the official code.

    Args:
        proto: a path to, or the bytes of, a SentencePiece model (for the released
            LvT models, T5's English vocabulary).
        max_length: tokens per text after truncation and padding (64 officially).
        canonicalize: apply `canonicalize_text` first (the official default; the
            text encoder was trained on canonical text).
        add_bos: prepend the model's BOS id when it has one (the official default;
            T5's vocabulary has none).
        add_eos: append the model's EOS id (officially off; the released text
            encoder was trained without it).

    Input: a list (or tuple, iterable, 1-D array) of `str`, or of `bytes` decoded
    as UTF-8. A bare `str`/`bytes` is a batch of one: the official code would
    silently split it into characters. An empty list gives `(0, max_length)`
    arrays. Anything else raises `TypeError`/`ValueError` naming the item.

    Long texts are encoded whole and then truncated: cutting the text first
    could change how SentencePiece segments the kept part, and encoding is
    linear in the text's length.
    """

    def __init__(
        self,
        proto: str | os.PathLike | bytes,
        max_length: int = 64,
        canonicalize: bool = True,
        add_bos: bool = True,
        add_eos: bool = False,
    ):
        require(("sentencepiece",), "VideoPrismTokenizer", "the text tokenizer")
        import sentencepiece  # here, so that the module imports without it

        self.max_length = _positive_int(max_length, "max_length")
        self.canonicalize = bool(canonicalize)
        self.add_bos, self.add_eos = _switch(add_bos, "add_bos"), _switch(add_eos, "add_eos")
        if isinstance(proto, str | os.PathLike):
            path = Path(proto).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"SentencePiece model {str(path)!r} does not exist or is not a file"
                )
            self.source: str | None = str(path)
            proto = path.read_bytes()
        elif isinstance(proto, bytes | bytearray | memoryview):
            self.source = None
            proto = bytes(proto)
        else:
            raise TypeError(
                f"proto must be a path to, or the bytes of, a SentencePiece model; "
                f"got {type(proto).__name__}"
            )
        self._processor = sentencepiece.SentencePieceProcessor()
        try:
            self._processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as err:
            where = repr(self.source) if self.source else "proto (bytes)"
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{where} is not a SentencePiece model: {message}") from None
        self.proto: bytes = proto

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source or '<bytes>'!r}, max_length={self.max_length}, "
            f"canonicalize={self.canonicalize}, add_bos={self.add_bos}, add_eos={self.add_eos}, "
            f"vocabulary_size={self.vocabulary_size})"
        )

    # ------------------------------------------------------------- vocabulary
    @property
    def vocabulary_size(self) -> int:
        return self._processor.vocab_size()

    @property
    def bos_id(self) -> int:
        """-1 when the model has no BOS (T5's vocabulary): then none is prepended."""
        return self._processor.bos_id()

    @property
    def eos_id(self) -> int:
        return self._processor.eos_id()

    @property
    def pad_id(self) -> int:
        """The model's own pad piece (-1 if none); padding always uses id 0, as officially."""
        return self._processor.pad_id()

    @property
    def unk_id(self) -> int:
        return self._processor.unk_id()

    # ------------------------------------------------------------- tokenising
    def tokenize_texts(
        self,
        texts: str | bytes | Iterable[str | bytes],
        max_length: int | None = None,
        add_bos: bool | None = None,
        add_eos: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """→ `(token_ids, padding_mask)`, int32 `(batch, max_length)`; mask 1 = real token.

        `max_length`, `add_bos` and `add_eos` override the tokenizer's settings for this call.
        """
        length = self.max_length if max_length is None else _positive_int(max_length, "max_length")
        add_bos = self.add_bos if add_bos is None else _switch(add_bos, "add_bos")
        add_eos = self.add_eos if add_eos is None else _switch(add_eos, "add_eos")
        texts = _as_texts(texts)
        if self.canonicalize:
            texts = [canonicalize_text(text) for text in texts]
        bos = [self.bos_id] if add_bos and self.bos_id >= 0 else []
        eos = [self.eos_id] if add_eos and self.eos_id >= 0 else []
        ids = np.zeros((len(texts), length), np.int32)
        mask = np.zeros((len(texts), length), np.int32)
        for row, pieces in enumerate(self._processor.EncodeAsIds(texts)):
            kept = (bos + pieces + eos)[:length]
            ids[row, : len(kept)] = kept
            mask[row, : len(kept)] = 1
        return ids, mask

    def __call__(
        self,
        texts: str | bytes | Iterable[str | bytes],
        max_length: int | None = None,
        add_bos: bool | None = None,
        add_eos: bool | None = None,
    ) -> dict[str, np.ndarray]:
        ids, mask = self.tokenize_texts(texts, max_length, add_bos, add_eos)
        return {"token_ids": ids, "padding_mask": mask}

    def detokenize(self, token_ids: Any, padding_mask: Any = None) -> str | list[str]:
        """Token ids (one sequence → str, a batch → list of str) back to text.

        With `padding_mask`, positions where it is 0 are dropped. Without, trailing
        zeros are taken for padding (padding is always at the end); an id 0 inside
        a sequence is kept, as it may be a real token (the unknown piece in many
        models). BOS/EOS/pad pieces are control symbols that decode to nothing.
        Canonical text is lower case with the punctuation gone, so this does not
        give back the original text.
        """
        ids = np.asarray(token_ids)
        single = ids.ndim == 1
        mask = None if padding_mask is None else np.asarray(padding_mask)
        if ids.ndim not in (1, 2) or (mask is not None and mask.shape != ids.shape):
            raise ValueError(
                f"token_ids must be 1-D or 2-D, and padding_mask of the same shape; got "
                f"{ids.shape} and {None if mask is None else mask.shape}"
            )
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"token_ids must be integers; got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocabulary_size):
            raise ValueError(
                f"token_ids must lie in [0, {self.vocabulary_size}); got {ids.min()}..{ids.max()}"
            )
        keeps = None if mask is None else np.atleast_2d(mask).tolist()
        rows = []
        for i, row in enumerate(np.atleast_2d(ids).tolist()):
            if keeps is not None:
                row = [t for t, keep in zip(row, keeps[i], strict=True) if keep]
            else:
                while row and row[-1] == 0:
                    row.pop()
            rows.append(self._processor.DecodeIds(row))
        return rows[0] if single else rows

    # ------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """JSON-safe and self-contained: the model travels as base64 (~1 MB for T5's)."""
        return {
            "proto": base64.b64encode(self.proto).decode("ascii"),
            "max_length": self.max_length,
            "canonicalize": self.canonicalize,
            "add_bos": self.add_bos,
            "add_eos": self.add_eos,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VideoPrismTokenizer:
        config = dict(config)
        proto = config.pop("proto", None)
        if isinstance(proto, str):
            try:
                proto = base64.b64decode(proto, validate=True)
            except binascii.Error as err:
                raise ValueError(f"config['proto'] must be base64 (get_config's): {err}") from None
        return cls(proto, **config)

    def save_to_preset(self, preset_dir: str | os.PathLike) -> None:
        """Writes `assets/tokenizer/vocabulary.spm` and `tokenizer.json` into a preset directory.

        The asset path is keras_hub's, so a backbone preset and a tokenizer can
        share one directory; `tokenizer.json` holds only our settings.
        """
        out = Path(preset_dir)
        (out / ASSET).parent.mkdir(parents=True, exist_ok=True)
        (out / ASSET).write_bytes(self.proto)
        saved = {
            "module": "videoprism_keras",
            "class_name": type(self).__name__,
            "config": {k: getattr(self, k) for k in _SETTINGS},
            "registered_name": f"videoprism_keras>{type(self).__name__}",
        }
        (out / CONFIG).write_text(json.dumps(saved, indent=2))

    @classmethod
    def from_preset(cls, preset: str | os.PathLike, **kwargs: Any) -> VideoPrismTokenizer:
        """A preset directory (ours or keras_hub's), a SentencePiece model file, or a
        preset name or handle (see `_resolve_preset_file`). `kwargs` (`max_length`,
        `canonicalize`, `add_bos`, `add_eos`) override what the preset saved. keras_hub's
        `tokenizer.json` describes keras_hub's own layer, so only our settings are read
        from it."""
        path = Path(os.fspath(preset)).expanduser()
        if not path.exists():
            path = _resolve_preset_file(os.fspath(preset))
        if path.is_file():
            if path.suffix == ".npz":
                raise ValueError(
                    f"{path} is an official checkpoint, which holds no tokenizer; pass the "
                    "SentencePiece model (or a preset directory) instead"
                )
            return cls(path, **kwargs)
        if not (path / ASSET).is_file():
            raise FileNotFoundError(f"preset directory {str(path)!r} has no tokenizer ({ASSET})")
        settings = {}
        if (path / CONFIG).is_file():
            try:
                saved = json.loads((path / CONFIG).read_text()).get("config", {})
            except (ValueError, AttributeError) as err:
                raise ValueError(f"{path / CONFIG} is not a tokenizer config: {err}") from None
            settings = {k: saved[k] for k in _SETTINGS if k in saved}
        return cls(path / ASSET, **{**settings, **kwargs})


def _resolve_preset_file(preset: str) -> Path:
    """A preset that is not a local path → a local SentencePiece file or preset directory.

    The one place that knows about built-in names and remote handles: a built-in
    LvT name gives the tokenizer of its converted preset if cached, else T5's
    vocabulary (downloaded once); `hf://`/`kaggle://`/`modelscope://` handles and
    unknown names go to `hub.resolve`, which downloads or raises a `ValueError` listing
    the presets.
    """
    from . import hub
    from .presets import PRESETS

    if preset in PRESETS:
        if not PRESETS[preset]["multimodal"]:
            raise ValueError(f"{preset} is a video-only preset: it has no text tokenizer")
        cached = hub.cache_root() / preset / ASSET
        return cached if cached.is_file() else hub.fetch_tokenizer()
    return hub.resolve(preset)
