"""One frame → the model's size: Lanczos on uint8 like the official code, with a policy
for frames whose aspect ratio differs from the target.

    "center_crop"  (default) crop the largest centred region of the target's aspect
                   ratio, then resize: nothing is distorted, the borders are lost.
    "squash"       resize straight to the target: everything kept, shapes distorted.
    "pad"          resize to fit inside, then pad with black: everything kept, undistorted.

For frames already of the target's aspect ratio (the only ones the official code
accepts) the three are the same: a plain Lanczos resize.
"""

import numpy as np

RESIZE_MODES = ("center_crop", "squash", "pad")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _lanczos(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if image.dtype == np.uint8:
        return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    # Float frames: resize each channel in 32-bit float mode, so nothing is quantised.
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), mode="F")
                   .resize((width, height), Image.Resampling.LANCZOS))
        for c in range(image.shape[-1])
    ]  # fmt: skip
    return np.stack(channels, axis=-1)


def fit_frame(image: np.ndarray, size, resize_mode="center_crop") -> np.ndarray:
    """(H, W, 3) uint8 or float → (size[0], size[1], 3), same dtype."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}; got {resize_mode!r}")
    target_h, target_w = size
    h, w = image.shape[:2]
    if h * target_w == w * target_h or resize_mode == "squash":
        return image if (h, w) == (target_h, target_w) else _lanczos(image, target_w, target_h)
    if resize_mode == "center_crop":
        if h * target_w > w * target_h:  # too tall
            crop = round(w * target_h / target_w)
            top = (h - crop) // 2
            image = image[top : top + crop]
        else:
            crop = round(h * target_w / target_h)
            left = (w - crop) // 2
            image = image[:, left : left + crop]
        return _lanczos(np.ascontiguousarray(image), target_w, target_h)
    scale = min(target_h / h, target_w / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = _lanczos(image, new_w, new_h)
    out = np.zeros((target_h, target_w, image.shape[2]), dtype=image.dtype)
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def as_frame_array(frames) -> np.ndarray:
    """Frames given in memory (array or list of arrays / PIL images) → (T, H, W, 3)."""
    if isinstance(frames, np.ndarray):
        array = frames
    else:
        array = np.stack(
            [np.asarray(f.convert("RGB") if hasattr(f, "convert") else f) for f in frames]
        )
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB; got shape {array.shape}")
    if len(array) == 0:
        raise ValueError("frames are empty: no frame to sample")
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        if array.min() < 0 or array.max() > 1:
            raise ValueError("float frames must be in [0, 1] (or pass uint8 in [0, 255])")
    return array
