"""Video input: files, folders of images, GIFs or arrays → model-ready clips.

    load_video(source, num_frames=16, size=(288, 288))   → (T, H, W, 3) float32 in [0, 1]
    iter_clips(path, clip_seconds=..., stride_seconds=...) → Clip(start, end, frames, mask)
    VideoBatchLoader(sources, batch_size=...)              → batches decoded in threads

No Keras here: this runs (and tests) without a backend.
"""

from .api import Clip, VideoBatchLoader, iter_clips, load_video
from .decode import VideoDecodeError, VideoInfo, probe, sample_indices
from .frames import RESIZE_MODES

__all__ = [
    "RESIZE_MODES",
    "Clip",
    "VideoBatchLoader",
    "VideoDecodeError",
    "VideoInfo",
    "iter_clips",
    "load_video",
    "probe",
    "sample_indices",
]
