"""Videos written with PyAV for the tests. Every frame shows its own index as a 3 × 4
grid of bright or dim blocks, which survives lossy codecs and resizing, so a test can
read back which frame it got."""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np

ROWS, COLS = 3, 4  # 12 bits: indices up to 4095
BRIGHT, DIM = 235, 40

# Settings that keep the grid intact and write fast.
CODEC_OPTIONS = {
    "libx264": {"preset": "ultrafast", "crf": "10"},
    "mpeg4": {"qscale": "2"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "0"},
}


def frame_image(index: int, height: int, width: int) -> np.ndarray:
    image = np.full((height, width, 3), DIM, np.uint8)
    for bit in range(ROWS * COLS):
        if (index >> bit) & 1:
            r, c = divmod(bit, COLS)
            image[r * height // ROWS : (r + 1) * height // ROWS,
                  c * width // COLS : (c + 1) * width // COLS] = BRIGHT  # fmt: skip
    return image


def index_of(frame: np.ndarray) -> int:
    """Reads back `frame_image`'s index from a frame of any size (uint8 or float)."""
    frame = np.asarray(frame, np.float32) * (255 if frame.dtype != np.uint8 else 1)
    height, width = frame.shape[:2]
    index = 0
    for bit in range(ROWS * COLS):
        r, c = divmod(bit, COLS)
        y, x = (2 * r + 1) * height // (2 * ROWS), (2 * c + 1) * width // (2 * COLS)
        if frame[y, x].mean() > (BRIGHT + DIM) / 2:
            index |= 1 << bit
    return index


def write_video(path: Path, frames: int = 20, size=(48, 64), fps: int = 10,
                codec: str = "libx264", pix_fmt: str = "yuv420p", gop: int | None = None,
                bframes: int = 0, pts=None, rotation: float | None = None,
                image=None, options: dict | None = None) -> Path:  # fmt: skip
    """A video of `frames` frames of `size` (height, width); `pts` (in ms) makes it VFR."""
    import av

    height, width = size
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        opts = dict(CODEC_OPTIONS.get(codec, {}))
        if gop:
            opts["g"] = str(gop)
        if codec == "libx264":
            opts["bf"] = str(bframes)
        elif bframes and codec == "mpeg4":
            opts["bf"] = str(bframes)
        stream.options = opts
        if pts is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            picture = frame_image(i, height, width) if image is None else image(i)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def decode_all(path: Path) -> list[np.ndarray]:
    """The official way, for reference on small files: every frame as RGB, in memory."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def write_with_audio(target, frames: int = 30, audio_seconds: float = 6.0, fps: int = 10,
                     format: str | None = None) -> None:  # fmt: skip
    """H.264 video of `frames` frames plus a silent AAC track of `audio_seconds`, muxed in
    time order. `target` is a path, or a file object (not seekable: a live recording,
    whose muxer cannot go back to write the duration and index)."""
    import av

    with av.open(target if hasattr(target, "write") else str(target), "w",
                 format=format) as container:  # fmt: skip
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        video.options = dict(CODEC_OPTIONS["libx264"])
        audio = container.add_stream("aac", rate=8000)
        packets = []
        for i in range(int(audio_seconds * 8000 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = 8000, i * 1024
            packets += audio.encode(frame)
        packets += audio.encode()
        for i in range(frames):
            packets += video.encode(av.VideoFrame.from_ndarray(frame_image(i, 32, 32), "rgb24"))
        packets += video.encode()
        for packet in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            container.mux(packet)


def lavfi_frames(spec: str, count: int):
    """The first `count` RGB frames (uint8 arrays) of a libavfilter source such as
    "testsrc2=size=64x48:rate=10", one at a time as they are made."""
    import av

    if count <= 0:
        return
    with av.open(spec, format="lavfi") as source:
        for i, frame in enumerate(source.decode(video=0)):
            yield frame.to_ndarray(format="rgb24")
            if i + 1 == count:
                return


def lavfi_video(path: Path, parts, fps: int = 4, size=(64, 48)) -> Path:
    """A video of lavfi sources one after the other: (source, seconds) parts, encoded as
    they are generated (nothing held)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for source, seconds in parts:
            spec = f"{source}=size={size[0]}x{size[1]}:rate={fps}"
            for image in lavfi_frames(spec, round(seconds * fps)):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path
