"""Images in and out: videos that are not video files (a folder of image files, a GIF, a
single image) read as frames, and a clip's poster written as a JPEG.

They go through PIL (a GIF is a sequence of images to it), are sampled with the same
official indices, and only the sampled images are ever kept in memory. Images are
turned upright by their EXIF orientation, as the rotation of video files is honoured.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .decode import VideoDecodeError
from .frames import IMAGE_SUFFIXES, Transform
from .sampling import choose

GIF_SUFFIXES = frozenset({".gif"})
POSTER_SIDE = 128  # pixels, a poster's long side


def is_image_source(path: Path) -> bool:
    """A folder holding image files, or a file whose suffix says image or GIF."""
    if path.is_dir():
        return any(_is_image(p) for p in path.iterdir())
    return path.suffix.lower() in IMAGE_SUFFIXES | GIF_SUFFIXES


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: Path):
    """frame_2.png before frame_10.png: numbers compare as numbers, as people number frames."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_image(p)), key=_natural_key)


def _rgb(image, source) -> np.ndarray:
    """A PIL image → (H, W, 3) uint8 RGB, upright as viewers show it: cameras and phones
    store the sensor's pixels and an EXIF orientation saying how to turn them."""
    from PIL import ExifTags, ImageOps

    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise VideoDecodeError(source, f"not a readable image ({err})") from None


def read_images(path: Path, num_frames: int, transform: Transform,
                pad: bool) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """Sampled frames of a folder of images, a GIF or one image → (frames, mask)."""
    from PIL import Image, ImageSequence

    if path.is_dir():
        files = image_files(path)
        if not files:
            raise VideoDecodeError(path, "is a directory with no image files, not a video")
        indices, mask = choose(len(files), num_frames, pad)
        cache: dict[int, np.ndarray] = {}
        for i in dict.fromkeys(int(i) for i in indices):
            try:
                with Image.open(files[i]) as image:
                    cache[i] = transform(_rgb(image, files[i]))
            except OSError as err:
                raise VideoDecodeError(files[i], f"not a readable image ({err})") from None
        return [cache[int(i)] for i in indices], mask
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    try:
        image = Image.open(path)
    except (OSError, ValueError) as err:
        raise VideoDecodeError(path, f"not a readable image or GIF ({err})") from None
    with image:
        count = getattr(image, "n_frames", 1)
        indices, mask = choose(count, num_frames, pad)
        wanted, cache = set(indices.tolist()), {}
        try:
            for i, frame in enumerate(ImageSequence.Iterator(image)):
                if i in wanted:
                    cache[i] = transform(_rgb(frame, path))
                if len(cache) == len(wanted):
                    break
        except (OSError, ValueError, EOFError) as err:
            raise VideoDecodeError(path, f"corrupt image or GIF ({err})") from None
    if len(cache) < len(wanted):
        raise VideoDecodeError(path, f"only {len(cache)} of its {count} frames could be read")
    return [cache[int(i)] for i in indices], mask


def poster_jpeg(frames: np.ndarray | Sequence[np.ndarray], side: int = POSTER_SIDE) -> bytes:
    """The middle frame of a clip, as the model saw it, as a small JPEG.

    Args:
        frames: (T, H, W, 3) array. The clip's frames: uint8, or floats in [0, 1].
        side: int. The poster's long side in pixels, at most (a smaller frame is not
            enlarged). Defaults to 128.

    Returns:
        The JPEG file's bytes.
    """
    from PIL import Image

    frame = np.asarray(frames[len(frames) // 2])
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(frame)
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
