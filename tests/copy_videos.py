"""A small collection of generated videos with planted copies, for the copies tests and the
robustness figures in docs/copies.md: distinct moving lavfi sources (PyAV's bundled
libav), and copies of them re-encoded at a low bitrate, rescaled, cropped by 10%, trimmed,
and inserted into another video. No periodic source (testsrc, zoneplate): one matches
itself a period later, a copy at a second offset that is really there."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from videos import lavfi_frames

FPS = 10
SIZE = (120, 160)  # height, width
SECONDS = 12
# Moving sources, each unlike the others (a still source makes every window alike), all
# their random parts seeded or given (life's cells, gradients' points and colours).
SOURCES = {
    "testsrc2": "testsrc2=size=160x120:rate=10",
    "mandelbrot": "mandelbrot=size=160x120:rate=10",
    "life": "life=size=160x120:rate=10:mold=10:ratio=0.2:death_color=#202020:seed=5",
    "gradients": "gradients=size=160x120:rate=10:speed=0.05:seed=3:x0=10:y0=10:x1=150:y1=110:"
    "nb_colors=3:c0=red:c1=blue:c2=green",
    "sierpinski": "sierpinski=size=160x120:rate=10:seed=2:jump=10",
    "gradients2": "gradients=size=160x120:rate=10:speed=0.1:seed=11:x0=0:y0=100:x1=160:y1=0:"
    "nb_colors=5:c0=yellow:c1=purple:c2=cyan:c3=black:c4=white",
}


@dataclass(frozen=True)
class Planted:
    """A planted copy: b holds a[a_start_s, a_end_s] from b_start_s (offset = a - b)."""

    kind: str
    a: str
    b: str
    a_start_s: float
    a_end_s: float
    b_start_s: float

    @property
    def offset_s(self) -> float:
        return self.a_start_s - self.b_start_s


def source_frames(spec: str, seconds: float = SECONDS) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a lavfi source."""
    return np.stack(list(lavfi_frames(spec, round(seconds * FPS))))


def write(path: Path, frames: np.ndarray, bit_rate: int | None = None) -> Path:
    """`frames` as an H.264 video at FPS (a low `bit_rate` degrades it)."""
    import av

    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, (
            "yuv420p")  # fmt: skip
        if bit_rate:
            stream.bit_rate = bit_rate
        for picture in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            if (frame.width, frame.height) != (stream.width, stream.height):
                frame = frame.reformat(stream.width, stream.height)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def resized(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR))
                     for f in frames])  # fmt: skip


def cropped(frames: np.ndarray, share: float = 0.1) -> np.ndarray:
    """10% off each side's total (5% each edge), scaled back to the frame's size."""
    h, w = frames.shape[1:3]
    dy, dx = int(h * share / 2), int(w * share / 2)
    return resized(frames[:, dy : h - dy, dx : w - dx], h, w)


def collection(folder: Path) -> list[Planted]:
    """Writes the sources and their copies into `folder` → the planted copies."""
    folder.mkdir(parents=True, exist_ok=True)
    src = {name: source_frames(spec) for name, spec in SOURCES.items()}
    for name, frames in src.items():
        write(folder / f"{name}.mp4", frames)
    f = lambda name: str((folder / name).resolve())  # noqa: E731
    planted = []
    write(folder / "testsrc2_reencoded.mp4", src["testsrc2"], bit_rate=40_000)
    planted.append(Planted("reencode", f("testsrc2.mp4"), f("testsrc2_reencoded.mp4"), 0,
                           SECONDS, 0))  # fmt: skip
    write(folder / "mandelbrot_rescaled.mp4", resized(src["mandelbrot"], 72, 96))
    planted.append(Planted("rescale", f("mandelbrot.mp4"), f("mandelbrot_rescaled.mp4"), 0,
                           SECONDS, 0))  # fmt: skip
    write(folder / "life_cropped.mp4", cropped(src["life"]))
    planted.append(Planted("crop", f("life.mp4"), f("life_cropped.mp4"), 0, SECONDS, 0))
    start, end = 3, 9
    write(folder / "gradients_trimmed.mp4", src["gradients"][start * FPS : end * FPS])
    planted.append(Planted("trim", f("gradients.mp4"), f("gradients_trimmed.mp4"), start, end, 0))
    # sierpinski[2:8] inside gradients2 from 4 s. At a window start: with this small random
    # model, slowly changing content between two window starts matches other offsets
    # nearly as well (docs/copies.md measures it).
    host = src["gradients2"]
    write(folder / "gradients2_with_insert.mp4",
          np.concatenate([host[:40], src["sierpinski"][20:80], host[40:]]))  # fmt: skip
    with_insert = f("gradients2_with_insert.mp4")
    planted.append(Planted("inserted", with_insert, f("sierpinski.mp4"), 4.0, 10.0, 2.0))
    # The host is in it too, on either side of the insert (two offsets between one pair).
    planted.append(Planted("host", with_insert, f("gradients2.mp4"), 0.0, 4.0, 0.0))
    planted.append(Planted("host", with_insert, f("gradients2.mp4"), 10.0, 18.0, 4.0))
    return planted
