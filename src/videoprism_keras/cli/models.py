"""Which model a command runs, and how: the preset and its overrides, the tokenizer, the
sampling, read from the flags once (`ModelOptions`); an index's own choices as defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import CLI_DTYPE_PRECISION, DEFAULT_SOFT_CAP, INDEX_LEGACY_ENGINE, KERAS_DTYPES
from ..native_logs import held_stderr
from .parser import DEFAULT_PRESET, UsageError, default_engine

if TYPE_CHECKING:
    from ..apps import Embeddings
    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder
    from ..tokenizer import VideoPrismTokenizer

# What an index records of its sampling: the `ModelOptions` field → the index's meta key.
INDEX_SAMPLING = {"num_frames": "num_frames", "size": "size", "clip_seconds": "clip_seconds",
                  "stride_seconds": "stride_seconds"}  # fmt: skip


# The index's meta key for the --tokenizer it was built with (an absolute path), which
# `search` and `serve` use unless told otherwise; absent: the preset's own.
INDEX_TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class ModelOptions:
    """The model flags of a command; None where the flag was not given (or the command
    has no such flag)."""

    preset: str | None = None
    soft_cap: float | None = None
    dtype: str | None = None
    tokenizer: str | None = None
    num_frames: int | None = None
    size: int | None = None
    clip_seconds: float | None = None
    stride_seconds: float | None = None
    batch_size: int = 4
    progress: bool = True
    # Whether `tokenizer` is the one an index recorded, rather than the flag's.
    tokenizer_recorded: bool = False
    # --engine: "auto" or an engine's name; None where the command has no such flag (it
    # runs Keras in the --dtype policy, as before engines).
    engine: str | None = None
    # Whether `engine` is the one an index recorded, rather than the flag's.
    engine_recorded: bool = False
    # Whether `engine` is the default ($VIDEOPRISM_ENGINE, else auto), not the flag's: an
    # index's own engine comes first.
    engine_default: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelOptions:
        flag = lambda name: getattr(args, name, None)  # noqa: E731
        return cls(preset=flag("preset"), soft_cap=flag("soft_cap"), dtype=flag("dtype"),
                   tokenizer=flag("tokenizer"), num_frames=flag("frames"), size=flag("size"),
                   clip_seconds=flag("clip_seconds"), stride_seconds=flag("stride_seconds"),
                   batch_size=flag("batch_size") or 4, progress=not flag("no_progress"),
                   **cls._engine_flag(args))  # fmt: skip

    @staticmethod
    def _engine_flag(args: argparse.Namespace) -> dict:
        """engine (and engine_default) of a command with --engine: the flag's, else
        `default_engine()`."""
        if not hasattr(args, "engine"):
            return {}
        if args.engine is None:
            return {"engine": default_engine(), "engine_default": True}
        return {"engine": args.engine}

    @property
    def preset_name(self) -> str:
        return str(self.preset or DEFAULT_PRESET)

    @property
    def cap(self) -> float:
        """The attention cap for an official .npz (which does not store it)."""
        return DEFAULT_SOFT_CAP if self.soft_cap is None else self.soft_cap

    @functools.cached_property
    def engine_choice(self) -> tuple[str, str]:
        """(engine, why): --engine resolved for --dtype on this backend (once: a usage
        error in the flags' words, before the model loads)."""
        from .engines import resolve

        if self.engine is None:
            return "keras", "this command runs Keras"
        from ..extras import MissingExtra

        try:
            return resolve(self.engine, self.dtype)
        except (UsageError, MissingExtra) as err:
            if not self.engine_recorded:
                raise
            said = getattr(err, "cli_message", None) or str(err)
            raise UsageError(f"the index's engine: {said} (a search may pass --engine keras "
                             "instead)") from None  # fmt: skip

    @property
    def engine_asked(self) -> str | None:
        """--engine as a choice made: None for "auto" or the default ($VIDEOPRISM_ENGINE),
        where an index's own engine is used."""
        return None if self.engine_default or self.engine in (None, "auto") else self.engine

    @property
    def chosen_engine(self) -> str:
        """The engine that runs the model (`engine_choice`)."""
        return self.engine_choice[0]

    @property
    def said(self) -> bool:
        """Whether the engine is said on stderr: wherever it is not Keras in float32 (the
        reference), as asked, as auto chose or as an index recorded."""
        return self.chosen_engine != "keras" or self.dtype not in (None, "float32")

    def overrides(self) -> dict:
        """`from_preset`'s keyword arguments besides the preset: dtype and soft cap. An
        int8 model loads in float32 (then quantized on Keras), and another engine than
        Keras takes the float32 model at whatever --dtype."""
        keras_dtype = self.dtype in KERAS_DTYPES[1:] and self.chosen_engine == "keras"
        overrides = {"dtype": self.dtype} if keras_dtype else {}
        if self.preset_name.endswith(".npz"):
            overrides["attention_logit_soft_cap"] = self.cap
        return overrides

    def load(self, need_text: bool = False, text_later: bool = False,
             quantize: bool = True) -> VideoPrismBackbone:  # fmt: skip
        """The backbone; a usage error if text is needed and it has no text tower.

        The tokenizer is checked first (`check_tokenizer`), and a preset that cannot be
        downloaded names every file the command needs: with text (`need_text`, or
        `text_later`: a server, or an index that records it), the tokenizer too."""
        from .. import VideoPrismBackbone
        from ..hub import PresetUnavailableError

        self.check_tokenizer(need_text, text_later)
        self.chosen_engine  # noqa: B018 (resolved now: a wrong --engine fails before loading)
        try:
            model = VideoPrismBackbone.from_preset(self.preset_name, **self.overrides())
        except PresetUnavailableError as err:  # the .npz it names holds no tokenizer
            if (need_text or text_later) and not self.tokenizer and has_text(self.preset_name):
                err.cli_message = f"{err.cli_message} and {tokenizer_flag()}"
            raise
        if need_text and not model.is_multimodal:
            raise UsageError(f"{self.preset_name} is a video-only model; text needs an LvT preset")
        if quantize:
            self.quantize(model)
        return model

    @property
    def keras_int8(self) -> bool:
        """Whether the model runs as Keras' own int8 (quantized once loaded)."""
        return self.dtype == "int8" and self.chosen_engine == "keras"

    def quantize(self, model: VideoPrismBackbone) -> None:
        """--dtype int8 on Keras: the loaded float32 model quantized (`load` does it, unless
        told to leave it to the caller, who first changes the weights: LoRA adapters)."""
        if self.keras_int8:
            model.quantize("int8")  # Keras' own int8 (JAX: `engines.resolve` refuses others)

    def encoder(self, model: VideoPrismBackbone) -> Encoder:
        """The compiled model calls every part of the command shares, on the chosen engine
        (said on stderr unless it is Keras in float32: `said`)."""
        from .engines import make_encoder

        engine, why = self.engine_choice
        return make_encoder(model, engine, self.dtype, why if self.said else None,
                            auto=self.engine == "auto")  # fmt: skip

    @functools.cached_property
    def ray_engine(self):
        """The engine --ray's actors run, as the local run's `encoder` would: None for
        Keras (each actor loads the model in --dtype), else the engine and precision
        (`apps.ray_engine.EngineChoice`) whose artefact the driver builds once for every
        actor. Said on stderr once, where the local run says its engine (`said`)."""
        from ..apps.ray_engine import EngineChoice
        from ..engine.choice import LABELS
        from .engines import precision

        engine, why = self.engine_choice
        if self.said:
            print(f"videoprism: engine: {LABELS[engine]} {precision(self.dtype)} in each Ray "
                  f"actor ({why})", file=sys.stderr)  # fmt: skip
        return EngineChoice.of(engine, precision(self.dtype))

    def check_tokenizer(self, need_text: bool = False, text_later: bool = False) -> None:
        """Before the model loads: the tokenizer file exists, and an official .npz (which
        holds none) comes with --tokenizer where text is needed."""
        wanted = need_text or (text_later and has_text(self.preset_name))
        if self.tokenizer and (wanted or not self.tokenizer_recorded):
            self.tokenizer_file()
        if need_text and not self.tokenizer and self.preset_name.endswith(".npz"):
            if has_text(self.preset_name) is not False:  # a video-only one fails as such
                raise UsageError(f"--preset {self.preset_name} is an official checkpoint, "
                                 f"which holds no tokenizer: add {tokenizer_flag()}")  # fmt: skip

    def tokenizer_file(self) -> Path:
        """--tokenizer (or the one the index recorded), which must exist."""
        path = Path(str(self.tokenizer)).expanduser()
        if path.is_file():
            return path
        if self.tokenizer_recorded:
            raise UsageError(f"the index was built with --tokenizer {self.tokenizer}, which no "
                             "longer exists: pass --tokenizer with the SentencePiece model "
                             "(.model/.spm file)")  # fmt: skip
        raise UsageError(f"--tokenizer {self.tokenizer}: no such file; expected a "
                         "SentencePiece model (.model/.spm file)")  # fmt: skip

    def load_tokenizer(self, model: VideoPrismBackbone) -> VideoPrismTokenizer:
        """--tokenizer (or the index's), else the preset's own."""
        from ..tokenizer import VideoPrismTokenizer

        if self.tokenizer:
            return VideoPrismTokenizer(self.tokenizer_file())
        if getattr(model, "tokenizer_file", None):
            return VideoPrismTokenizer(model.tokenizer_file)
        if self.preset_name.endswith(".npz"):
            raise UsageError(f"--preset {self.preset_name} is an official checkpoint, which "
                             f"holds no tokenizer: add {tokenizer_flag()}")  # fmt: skip
        return VideoPrismTokenizer.from_preset(self.preset_name)

    def sampling(self, model: VideoPrismBackbone) -> tuple[int, tuple[int, int]]:
        """(frames, (height, width)): the flags', else the model's."""
        from ..video import Sampling

        sampling = Sampling.for_model(model, self.num_frames, self.size)
        return sampling.num_frames, sampling.size

    def embed(self, model: VideoPrismBackbone, videos: list, kind: str = "video",
              encoder: Encoder | None = None) -> Embeddings:  # fmt: skip
        """`apps.embed_videos` at these options, failures skipped (and returned), through
        `encoder` (default: `self.encoder(model)`)."""
        from ..apps import embed_videos

        frames, size = self.sampling(model)
        return embed_videos(model, videos, kind=kind, batch_size=self.batch_size,
                            num_frames=frames, size=size, clip_seconds=self.clip_seconds,
                            stride_seconds=self.stride_seconds, progress=self.progress,
                            on_error="skip", encoder=encoder or self.encoder(model))  # fmt: skip


def has_text(preset: str) -> bool | None:
    """Whether `preset` has a text tower, where that is known without loading it (a
    built-in name, an official .npz's tensor names); None where it is not."""
    from ..presets import PRESETS

    if preset in PRESETS:
        return bool(PRESETS[preset]["multimodal"])
    if not preset.endswith(".npz") or not Path(preset).expanduser().is_file():
        return None
    import numpy as np

    try:
        with np.load(Path(preset).expanduser()) as held:  # its file list, no tensor read
            return any("text_encoder/" in name for name in held.files)
    except (OSError, ValueError):  # fails, and says so, when it loads
        return None


def tokenizer_flag() -> str:
    """The --tokenizer to name in a message: the LvT vocabulary where it is cached, else
    where to download it."""
    from ..hub import cached_tokenizer
    from ..presets import TOKENIZER_URL

    cached = cached_tokenizer()
    if cached.is_file():
        return f"--tokenizer {cached}"
    return (f"--tokenizer /path/to/{Path(TOKENIZER_URL).name} (the LvT vocabulary, from "
            f"{TOKENIZER_URL})")  # fmt: skip


def preset_id(preset: str | os.PathLike) -> str:
    """A preset as an index records it: local paths absolute, names and URLs as they are."""
    text = os.fspath(preset)
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def index_options(options: ModelOptions, meta: dict, writing: bool = False,
                  same_sampling: bool | None = None) -> ModelOptions:  # fmt: skip
    """`options` with an index's choices as defaults. An index holds one model's embedding
    space: its preset (and soft cap) are the defaults, another one is an error. Its
    sampling (frames, size; clip and stride seconds when `writing`) is the default too;
    `same_sampling` (default: `writing`) refuses another (one index, one sampling: a query
    sampled otherwise lands elsewhere), and `writing` another dtype, which a search may use
    (it approximates the same embedding space)."""
    same_sampling = writing if same_sampling is None else same_sampling
    stored = meta.get("preset")
    given = options.preset
    if given is not None and stored is not None and preset_id(given) != preset_id(stored):
        raise UsageError(f"the index holds embeddings of --preset {stored}, not {given}: "
                         "leave --preset out to use the index's")  # fmt: skip
    stored_cap = meta.get("soft_cap")
    if options.soft_cap is not None and stored_cap is not None and options.soft_cap != stored_cap:
        raise UsageError(
            f"the index was built with --soft-cap {stored_cap:g}, not {options.soft_cap:g}"
        )
    engine = index_engine(meta)
    # An engine other than Keras records the precision it ran: mixed_bfloat16 is bfloat16.
    dtype = options.dtype
    if engine not in (None, "keras") and dtype in CLI_DTYPE_PRECISION:
        dtype = CLI_DTYPE_PRECISION[dtype]
    for flag, given, held in (("--dtype", dtype, meta.get("dtype")),
                              ("--engine", options.engine_asked, engine)):  # fmt: skip
        if writing and given and held and given != held:
            raise UsageError(f"the index was built with {flag} {held}, not {given}: leave "
                             f"{flag} out to use the index's, or index into another "
                             "-o")  # fmt: skip
    resolved = {
        "preset": options.preset if options.preset is not None else stored or DEFAULT_PRESET,
        "soft_cap": options.soft_cap if options.soft_cap is not None else stored_cap,
        "dtype": options.dtype or meta.get("dtype"),
    }
    if options.engine is not None:  # a command with --engine: the index's unless given
        resolved["engine"] = options.engine_asked or engine or options.engine
        resolved["engine_recorded"] = not options.engine_asked and engine is not None
    if not writing and options.tokenizer is None and meta.get(INDEX_TOKENIZER):
        resolved.update(tokenizer=meta[INDEX_TOKENIZER], tokenizer_recorded=True)
    # Only `index` windows its videos: a search's query video stays whole.
    fields = INDEX_SAMPLING if writing else {"num_frames": "num_frames", "size": "size"}
    for name, key in fields.items():
        given, held = getattr(options, name), meta.get(key)
        if same_sampling and key in meta and given is not None and given != held:
            flag = "--" + name.replace("_", "-")
            shown = held if held is not None else "(not given: whole videos)"
            other = ", or index into another -o" if writing else ""
            raise UsageError(f"the index was built with {flag} {shown}, not {given}: "
                             f"leave {flag} out to use the index's{other}")  # fmt: skip
        resolved[name] = given if given is not None else held
    return dataclasses.replace(options, **resolved)


def index_engine(meta: dict) -> str | None:
    """The engine an index's embeddings were made on: the one it records; Keras for an
    index of videos written before engines were recorded; None for a new index."""
    if meta.get("engine"):
        return meta["engine"]
    return INDEX_LEGACY_ENGINE if "num_frames" in meta else None


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """TensorFlow's native INFO lines held back meanwhile (`native_logs.held_stderr`):
    Keras loads TensorFlow when it saves a file, even on JAX."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # what they log once loaded
    with held_stderr():
        yield
