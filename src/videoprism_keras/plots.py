"""Pictures a person would rather look at: label probabilities beside the clip, search
hits as frame strips, and moments on each video's similarity curve. Written with
matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .constants import CLASSIFICATION_TITLE, SEARCH_TITLE
from .deprecation import renamed_arguments
from .extras import require
from .video.times import seconds_or_none

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .apps import SearchHit
    from .apps.timeline import Curve, Moment

FRAME_HEIGHT = 160  # pixels of each frame in a strip: big enough to see what happens
FRAMES_PER_STRIP = 4
GAP = 6  # white pixels between the frames of a strip
DPI = 100
LABEL_WIDTH = 28  # characters per line of a wrapped label
TIMELINE_WIDTH = 10.0  # inches: wide enough to tell seconds apart in a long video
TIMELINE_ROW = 2.0  # inches per video's curve
# Rows (videos) drawn at most: a large top_k's picture stays a readable height; the videos
# of the best moments are drawn.
TIMELINE_MAX_ROWS = 12


def _pyplot():
    require(("matplotlib",), "videoprism_keras.plots", "--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _aspect(path) -> float:
    """Display width / height of a video, within [0.5, 2] (1 if it cannot be read)."""
    from .video import probe

    try:
        info = probe(path, exact=False)
    except (OSError, ValueError):
        return 1.0
    width, height = info.width, info.height
    if info.rotation % 180 == 90:
        width, height = height, width
    return float(np.clip(width / height, 0.5, 2.0)) if width and height else 1.0


def _join(frames, gap=GAP) -> np.ndarray:
    height = frames[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    pieces = [piece for frame in frames for piece in (frame, spacer)][:-1]
    return np.concatenate(pieces, axis=1)


@renamed_arguments(start="start_s", end="end_s")
def frame_strip(path: str | os.PathLike, start_s: float | None = None,
                end_s: float | None = None, count: int = FRAMES_PER_STRIP,
                height: int = FRAME_HEIGHT) -> np.ndarray:  # fmt: skip
    """`count` frames of a video (or of its [start_s, end_s) window, in seconds from the
    first frame, as `iter_clips` reports them) side by side, in the video's aspect ratio.
    A video that cannot be read gives a grey strip rather than an error.

    Args:
        path: str or path. The video.
        start_s: float or None. The window's start; None or NaN for the whole video.
            Defaults to None.
        end_s: float or None. The window's end. Defaults to None.
        count: int. Frames in the strip. Defaults to `FRAMES_PER_STRIP` (4).
        height: int. Pixels of each frame's height. Defaults to `FRAME_HEIGHT` (160).

    Returns:
        (height, W, 3) uint8 array.
    """
    from .video import load_clip, load_video

    size = (height, 2 * round(height * _aspect(path) / 2))
    blank = [np.full((*size, 3), 200, np.uint8)] * count
    try:
        if seconds_or_none(start_s) is None:
            frames = list(load_video(path, num_frames=count, size=size, dtype="uint8"))
        else:  # real timestamps, so variable frame rates land right
            frames = list(load_clip(path, start_s, end_s, count, size, dtype="uint8"))
    except (OSError, ValueError):  # moved or deleted since it was indexed
        frames = blank
    return _join(frames)


def _name(path) -> str:
    return Path(str(path)).name


def plot_classification(paths: Sequence[str | os.PathLike], probabilities: ArrayLike,
                        labels: Sequence[str], output: str | os.PathLike, top_k: int = 5,
                        title: str = CLASSIFICATION_TITLE) -> str | os.PathLike:  # fmt: skip
    """Per video: a strip of its frames, and its top-k labels as bars.

    Args:
        paths: sequence of paths. The videos.
        probabilities: (N, C) array. Each video's label probabilities.
        labels: sequence of str. The C labels.
        output: str or path. The PNG to write.
        top_k: int. Labels shown per video. Defaults to 5.
        title: str. The picture's title. Defaults to "VideoPrism zero-shot classification".

    Returns:
        `output`.
    """
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    probabilities = np.atleast_2d(probabilities)
    top_k = min(top_k, len(labels))
    strips = [frame_strip(path) for path in paths]
    strip_width = max(s.shape[1] for s in strips) / DPI  # inches at full resolution
    row_height = max(FRAME_HEIGHT / DPI + 0.7, 0.42 * top_k + 0.9)
    fig, axes = plt.subplots(len(paths), 2, squeeze=False, layout="constrained", dpi=DPI,
                             figsize=(strip_width + 5.2, row_height * len(paths) + 0.5),
                             gridspec_kw={"width_ratios": [strip_width, 5.2]})  # fmt: skip
    for (strip_ax, bar_ax), path, strip, probs in zip(
        axes, paths, strips, probabilities, strict=True
    ):
        strip_ax.imshow(strip, interpolation="lanczos")
        strip_ax.set_anchor("W")
        strip_ax.set_title(_name(path), fontsize=11, loc="left")
        strip_ax.axis("off")
        order = np.argsort(-probs, kind="stable")[:top_k][::-1]  # best at the top
        names = [textwrap.shorten(labels[i], 3 * LABEL_WIDTH, placeholder="…") for i in order]
        names = [textwrap.fill(name, LABEL_WIDTH) for name in names]
        bar_ax.barh(names, probs[order], color="#3b7dd8", height=0.6)
        bar_ax.set_xlim(0, 1)
        bar_ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        bar_ax.tick_params(axis="y", labelsize=10)
        bar_ax.spines[["top", "right"]].set_visible(False)
        shown = f"top {top_k} of {len(labels)} labels" if top_k < len(labels) else "labels"
        bar_ax.set_title(shown, fontsize=9, loc="left", color="#555555")
        for y, i in enumerate(order):
            inside = probs[i] > 0.8
            bar_ax.text(probs[i] - 0.02 if inside else probs[i] + 0.02, y, f"{probs[i]:.0%}",
                        va="center", ha="right" if inside else "left", fontsize=9,
                        color="white" if inside else "black")  # fmt: skip
    fig.suptitle(title, fontsize=13)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output


def plot_hits(query: str, hits: Sequence[SearchHit], output: str | os.PathLike,
              title: str | None = None) -> str | os.PathLike:  # fmt: skip
    """The top hits of a search, best first: a strip of each hit's frames (of its clip).

    Args:
        query: str. What was searched for (the title).
        hits: sequence of `SearchHit`. The hits, best first.
        output: str or path. The PNG to write.
        title: str or None. The picture's title. Defaults to `None`: "VideoPrism search:"
            and the query.

    Returns:
        `output`.
    """
    plt = _pyplot()
    if not hits:
        raise ValueError("no hits to plot")
    strips = [frame_strip(hit.path, hit.start_s, hit.end_s) for hit in hits]
    width = max(max(s.shape[1] for s in strips) / DPI + 0.4, 6.0)
    chars = int(width * 8)  # characters of the 13-point title per line
    end = "…" if title else "…”"  # the default's quotes stay closed
    title = textwrap.shorten(title or SEARCH_TITLE.format(query), 2 * chars, placeholder=end)
    title = textwrap.fill(title, chars)
    row = FRAME_HEIGHT / DPI + 0.45  # the frames and a title line
    height = row * len(hits) + 0.3 + 0.25 * title.count("\n")
    fig, axes = plt.subplots(len(hits), 1, squeeze=False, layout="constrained", dpi=DPI,
                             figsize=(width, height))  # fmt: skip
    for ax, strip, (rank, hit) in zip(axes[:, 0], strips, enumerate(hits, start=1), strict=True):
        ax.imshow(strip, interpolation="lanczos")
        ax.set_anchor("W")  # strips of other aspect ratios stay left-aligned with their titles
        when = ("" if seconds_or_none(hit.start_s) is None
                else f"   {hit.start_s:.1f}–{hit.end_s:.1f} s")  # fmt: skip
        missing = "" if Path(hit.path).is_file() else "   (file not found)"
        ax.set_title(f"#{rank}   {_name(hit.path)}{when}   score {hit.score:.3f}{missing}",
                     fontsize=11, loc="left")  # fmt: skip
        ax.axis("off")
    fig.suptitle(title, fontsize=13)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output


def plot_timeline(curves: Sequence[Curve], moments: Sequence[Moment], output: str | os.PathLike,
                  title: str | None = None) -> str | os.PathLike:  # fmt: skip
    """Each video's similarity to the query over time, its moments shaded and numbered.

    One row per curve (the order given; past `TIMELINE_MAX_ROWS` videos, only those of
    the best moments, the title saying how many more): every window's score as a line through the
    windows' middles (the curves' centred cosines), and each moment of that video as a
    band over its start–end span with a line at its middle, with its rank in the list.

    Args:
        curves: sequence of `Curve`. One per video, as `VideoIndex.curves` or
            `apps.streaming.stream_curves` gives them.
        moments: sequence of `Moment`. The moments, best first (those of videos without
            a curve are not drawn).
        output: str or path. The PNG to write.
        title: str or None. The picture's title. Defaults to None (none).

    Returns:
        `output`.
    """
    curves = list(curves)
    if not curves:
        raise ValueError(f"no curves to plot: give at least one video's curve. Received: "
                         f"curves={curves!r}")  # fmt: skip
    plt = _pyplot()
    ranked = list(enumerate(moments, start=1))
    left_out = len(curves) - TIMELINE_MAX_ROWS
    if left_out > 0:  # the videos of the best moments, in the order given
        first = {}
        for rank, moment in ranked:
            first.setdefault(moment.path, rank)
        best = sorted(range(len(curves)), key=lambda i: (first.get(curves[i].path, math.inf), i))
        curves = [curves[i] for i in sorted(best[:TIMELINE_MAX_ROWS])]
        note = f"({left_out} more videos not drawn)"
        title = f"{title} {note}" if title else note
    size = (TIMELINE_WIDTH, TIMELINE_ROW * len(curves) + 0.6)
    fig, axes = plt.subplots(len(curves), 1, squeeze=False, layout="constrained", dpi=DPI,
                             figsize=size)  # fmt: skip
    for ax, curve in zip(axes[:, 0], curves, strict=True):
        middle = (np.asarray(curve.start_s) + np.asarray(curve.end_s)) / 2
        scores = np.asarray(curve.scores)
        ax.plot(middle, scores, color="#3b7dd8", linewidth=1.5, marker="." if len(scores) < 60
                else None)  # fmt: skip
        for rank, moment in ranked:
            if moment.path != curve.path:
                continue
            ax.axvspan(moment.start_s, moment.end_s, color="#f4a261", alpha=0.35, linewidth=0)
            # A line too: a few seconds' band is under a pixel on an hours-long axis.
            ax.axvline((moment.start_s + moment.end_s) / 2, color="#e76f51", linewidth=0.8)
            ax.annotate(f"#{rank}", ((moment.start_s + moment.end_s) / 2, 1), fontsize=9,
                        xycoords=("data", "axes fraction"), ha="center", va="bottom")  # fmt: skip
        ax.set_xlim(0, float(np.max(curve.end_s)))  # a curve has a window at least
        ax.set_ylabel("similarity (centred)", fontsize=9)
        ax.set_title(_name(curve.path), fontsize=11, loc="left", pad=14)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    if title:
        fig.suptitle(textwrap.shorten(title, 120, placeholder="…"), fontsize=13)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output
