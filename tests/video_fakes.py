"""Videos generated with PyAV for the tests: every frame's content encodes its index."""

import fractions

import numpy as np


def frame_image(index, height, width, gradient=False):
    """A frame that spells its index in 8 vertical stripes (bright = bit set, dim = not),
    which survives lossy codecs; or, with `gradient`, a left-to-right ramp, to see
    which way a frame was turned."""
    if gradient:
        ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
        return np.broadcast_to(ramp, (height, width, 3)).copy()
    image = np.full((height, width, 3), 64, np.uint8)
    for bit in range(8):
        if (index >> bit) & 1:
            image[:, bit * width // 8 : (bit + 1) * width // 8] = 255
    return image


def write_video(path, frames=20, size=(48, 48), fps=10, codec="libx264", pix_fmt="yuv420p",
                pts=None, rotation=None):  # fmt: skip
    import av

    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # Near-lossless settings, so that a frame's brightness survives encoding.
        stream.options = {
            "libx264": {"preset": "ultrafast", "crf": "0"},
            "mpeg4": {"qscale": "1"},
            "libvpx-vp9": {"lossless": "1", "deadline": "realtime", "cpu-used": "8"},
        }.get(codec, {})
        if pts is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            image = frame_image(i, height, width, gradient=rotation is not None)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def index_of(frame):
    """Reads back the index that `frame_image` wrote (frames resized to any size)."""
    width = frame.shape[1]
    bits = [
        frame[:, (2 * bit + 1) * width // 16].mean() > 160  # the middle of each stripe
        for bit in range(8)
    ]
    return sum(1 << bit for bit, on in enumerate(bits) if on)
