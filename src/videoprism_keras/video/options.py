"""`Sampling`: how frames are taken from a video and shaped for the model, checked once.

Every entry point (`load_video`, `iter_clips`, `VideoBatchLoader`, `load_clip`, and the
apps above them) takes the same options; they are validated here, in one place, so a
bad value gets the same message whichever door it came in through, before any file is
opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .frames import RESIZE_MODES, Transform, fit, normalize_size

STRATEGIES = ("auto", "stream", "seek")
DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class Sampling:
    """How frames are taken from a video and shaped, checked once.

    `Sampling.for_model(model)` gives a model's own sampling (its frames and size).

    Args:
        num_frames: int. Frames sampled uniformly (positive); a shorter video repeats
            frames. Defaults to 16.
        size: int or (height, width). The output frame size; one int for a square.
            Normalised to a (height, width) tuple. Defaults to (288, 288).
        resize_mode: str. For frames of another aspect ratio than `size`:
            "center_crop", "squash" or "pad" (see `frames`). Defaults to "center_crop".
        pad: bool. For a video shorter than `num_frames`, keep each frame once and
            append black frames, masked out by a `frame_padding_mask`. Defaults to False.
        dtype: str. "float32" (in [0, 1]) or "uint8" (the resized frames before / 255).
            Defaults to "float32".
        strategy: str. How a file is decoded: "auto", "stream" or "seek" (same
            frames). Defaults to "auto".
    """

    num_frames: int = 16
    size: int | Sequence[int] = (288, 288)
    resize_mode: str = "center_crop"
    pad: bool = False
    dtype: str = "float32"
    strategy: str = "auto"

    def __post_init__(self):
        frames = self.num_frames
        if not isinstance(frames, int | np.integer) or isinstance(frames, bool | np.bool_):
            raise TypeError(f"num_frames must be a positive int; got {frames!r}")
        if frames <= 0:
            raise ValueError(f"num_frames must be a positive int; got {frames}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; got {self.resize_mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {self.dtype!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        if not isinstance(self.pad, bool | np.bool_):
            raise TypeError(f"pad must be True or False; got {self.pad!r}")
        # Frozen: the normalised values are set once, here.
        object.__setattr__(self, "num_frames", int(frames))
        object.__setattr__(self, "size", normalize_size(self.size))
        object.__setattr__(self, "pad", bool(self.pad))

    @classmethod
    def for_model(cls, model: Any, num_frames: int | None = None,
                  size: int | Sequence[int] | None = None, **options: Any) -> Sampling:  # fmt: skip
        """The sampling of clips for `model`: its frame count and frame size, unless given.

        Duck-typed (this module loads no Keras): the model's `num_frames` and the height
        and width of its `frame_shape` (as a `VideoPrismBackbone` has them), or those of
        its `backbone` (a model built on one, e.g. a classifier).

        Args:
            model: a `VideoPrismBackbone`, or any object with `num_frames` and
                `frame_shape` ((height, width, channels)), or with such a `backbone`.
            num_frames: int or None. Frames per clip. Defaults to None (the model's).
            size: int, (height, width) or None. Frame size. Defaults to None (the
                model's).
            **options: the other `Sampling` arguments (`resize_mode`, `pad`, `dtype`,
                `strategy`).

        Raises:
            TypeError: when a value is not given and the model does not tell it.
        """
        source = model
        if not hasattr(source, "frame_shape") and hasattr(source, "backbone"):
            source = source.backbone
        if not num_frames:
            num_frames = getattr(source, "num_frames", None)
        if not size:
            shape = getattr(source, "frame_shape", None)
            size = tuple(shape[:2]) if shape is not None else None
        missing = " and ".join(n for n, v in (("num_frames", num_frames), ("size", size))
                               if v is None)  # fmt: skip
        if missing:
            raise TypeError(f"Sampling.for_model: the model does not tell its {missing} (no "
                            f"`num_frames`/`frame_shape` attributes): pass {missing}. "
                            f"Received: a {type(model).__name__}")  # fmt: skip
        return cls(num_frames, size, **options)

    def transform(self) -> Transform:
        """The frame transform: resize (and crop or pad) to `size`."""
        return fit(self.size, self.resize_mode)

    def as_dict(self) -> dict:
        """The options as a dict (`size` a (height, width) tuple)."""
        return asdict(self)
