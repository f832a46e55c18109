"""Pictures a person would rather look at: label probabilities beside the clip, and search
hits as frame strips. Written with matplotlib's Agg backend (no display needed)."""

import math

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def frame_strip(path, start=None, end=None, count=4, height=96):
    """`count` frames of a video (or of its [start, end) window, in seconds from the first
    frame, as `iter_clips` reports them) side by side."""
    from .video import load_video, scan
    from .video.decode import stream_frames
    from .video.frames import fit

    if start is None or math.isnan(start):
        frames = load_video(path, num_frames=count, size=(height, height), dtype="uint8")
    else:
        index = scan(path)  # real timestamps, so variable frame rates land right
        times = index.seconds()
        if times is None:
            times = np.arange(index.count) / (index.fps or 25.0)
        inside = np.flatnonzero((times >= start) & (times < end)) if len(times) else times
        if not len(inside):
            inside = np.array([np.searchsorted(times, start)]).clip(0, max(index.count - 1, 0))
        indices = inside[np.linspace(0, len(inside), count, endpoint=False).astype(int)]
        kept, _ = stream_frames(path, indices, fit((height, height), "center_crop"))
        frames = [kept[i] for i in indices if i in kept] or [
            np.zeros((height, height, 3), np.uint8)
        ]
    return np.concatenate(list(frames), axis=1)


def plot_classification(paths, probabilities, labels, output, top_k=5):
    plt = _pyplot()
    rows = len(paths)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 2.6 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})  # fmt: skip
    for row, (path, probs) in enumerate(zip(paths, probabilities, strict=True)):
        strip_ax, bar_ax = axes[row]
        strip_ax.imshow(frame_strip(path))
        strip_ax.set_title(str(path).rsplit("/", 1)[-1], fontsize=10, loc="left")
        strip_ax.axis("off")
        order = np.argsort(-probs)[:top_k][::-1]
        bar_ax.barh([labels[i] for i in order], probs[order], color="#3b7dd8")
        bar_ax.set_xlim(0, 1)
        bar_ax.set_xlabel("probability")
        for y, i in enumerate(order):
            bar_ax.text(min(probs[i] + 0.02, 0.8), y, f"{probs[i]:.0%}", va="center", fontsize=9)
    fig.suptitle("VideoPrism zero-shot classification", fontsize=12)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def plot_hits(query, hits, output):
    plt = _pyplot()
    fig, axes = plt.subplots(len(hits), 1, figsize=(9, 1.9 * len(hits)), squeeze=False)
    for ax, (rank, hit) in zip(axes[:, 0], enumerate(hits, start=1), strict=True):
        ax.imshow(frame_strip(hit.path, hit.start, hit.end))
        when = "" if math.isnan(hit.start) else f"  {hit.start:.1f}–{hit.end:.1f}s"
        ax.set_title(f"#{rank}  score {hit.score:.3f}  {str(hit.path).rsplit('/', 1)[-1]}{when}",
                     fontsize=10, loc="left")  # fmt: skip
        ax.axis("off")
    fig.suptitle(f"search: {query}", fontsize=12)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
