"""`Sampling`: how frames are taken from a video and shaped for the model, checked once.

Every entry point (`load_video`, `iter_clips`, `VideoBatchLoader`, `load_clip`, and the
apps above them) takes the same options; they are validated here, in one place, so a
bad value gets the same message whichever door it came in through, before any file is
opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .frames import RESIZE_MODES, Transform, fit, normalize_size

STRATEGIES = ("auto", "stream", "seek")
DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class Sampling:
    """Args:
    num_frames: frames sampled uniformly (a positive int); a shorter video repeats frames.
    size: (height, width) of the output, or one int for a square.
    resize_mode: for frames of another aspect ratio than `size`: "center_crop",
        "squash" or "pad" (see `frames`).
    pad: for a video shorter than `num_frames`, keep each frame once and append black
        frames, masked out by a `frame_padding_mask`.
    dtype: "float32" (in [0, 1]) or "uint8" (the resized frames before / 255).
    strategy: how a file is decoded: "auto", "stream" or "seek" (same frames).
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

    def transform(self) -> Transform:
        """The frame transform: resize (and crop or pad) to `size`."""
        return fit(self.size, self.resize_mode)

    def as_dict(self) -> dict:
        return asdict(self)
