"""Progress bars that know their total, so they can tell the time left (tqdm's ETA).

The work is counted before it starts, cheaply: whole videos are counted by file, clips
by each file's stated duration (`video.api.count_clips`: nothing decoded), then
corrected as each file is actually cut. Training counts its steps over every epoch
(`step_bar`, a Keras callback: one bar for the whole run, not one per epoch).

Keras loads only when a training bar is made: the CLI counts before it loads anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def progress_bar(enabled: bool, total: int | None, unit: str = "clip",
                 desc: str = "embedding") -> Any:  # fmt: skip
    """A tqdm bar, or (disabled, or without tqdm) one that shows nothing; either has
    `update(n)`, `total`, `refresh()`, `set_postfix_str(s, refresh)` and `close()`.

    Args:
        enabled: bool. Whether to show it.
        total: int or None. Units of work expected; None when not known.
        unit: str. What one unit is. Defaults to "clip".
        desc: str. What the work is. Defaults to "embedding".
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        enabled = False
    if not enabled:
        return _Silent()
    return tqdm(total=total, unit=unit, desc=desc)


class _Silent:
    total = None

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


class ClipTotal:
    """The clips that cutting `videos` into windows gives: each file's count estimated
    from its stated duration at once, replaced by the real count as each file is cut
    (`cut`), so that the total is exact by the end.

    Args:
        videos: sequence of paths. The files, in the order they will be cut.
        clip_seconds: float. The windows' length.
        stride_seconds: float or None. Their stride (default `clip_seconds`).

    Attributes:
        total: int. The clips expected, all files together (written by one thread,
            the one that cuts them).
    """

    def __init__(self, videos: Sequence[str | os.PathLike], clip_seconds: float,
                 stride_seconds: float | None = None) -> None:  # fmt: skip
        self.estimates = [_estimate(v, clip_seconds, stride_seconds) for v in videos]
        self.total = sum(self.estimates)

    def cut(self, position: int, clips: int) -> None:
        """The file at `position` of `videos` gave `clips` clips (0 if it failed at once)."""
        self.total += clips - self.estimates[position]
        self.estimates[position] = clips


def expected_items(videos: Sequence[str | os.PathLike], clip_seconds: float | None,
                   stride_seconds: float | None = None) -> int | None:  # fmt: skip
    """The items `videos` give before any is read: one each, or with `clip_seconds` their
    clips (`ClipTotal`); None where one is a URI, which would have to be fetched first."""
    if not clip_seconds:
        return len(videos)
    if any("://" in os.fspath(v) for v in videos):
        return None
    return ClipTotal(videos, clip_seconds, stride_seconds).total


def _estimate(video: str | os.PathLike, clip_seconds: float,
              stride_seconds: float | None) -> int:  # fmt: skip
    from .video.api import count_clips

    try:
        return count_clips(video, clip_seconds, stride_seconds)
    except (ValueError, OSError):  # not a video file (frames in a folder?): one, until cut
        return 1


def step_bar(steps: int, desc: str = "training") -> Any:
    """A Keras callback: one bar over every training step of a `fit`, all epochs
    together, with the loss.

    Args:
        steps: int. The steps `fit` will run: steps per epoch times the epochs left.
        desc: str. What the bar says. Defaults to "training".
    """
    import keras

    class StepBar(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = _Silent()

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.bar = progress_bar(True, steps, unit="step", desc=desc)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None:
                self.bar.set_postfix_str(f"loss {float(loss):.3f}", refresh=False)
            self.bar.update(1)

        def on_train_end(self, logs: dict | None = None) -> None:
            self.bar.close()

    return StepBar()
