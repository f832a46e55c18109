"""Video input: video files, GIFs, image folders or arrays → model-ready clips.

    load_video(source, num_frames=16, size=(288, 288))     → (T, H, W, 3) float32 in [0, 1]
    iter_clips(path, clip_seconds=10, stride_seconds=5)    → Clips: `start_s, end_s, frames = clip`
    VideoBatchLoader(paths, batch_size=4, on_error="skip") → {"pixel_values", "paths"} batches
    load_clip(path, start_s, end_s)                        → one window of `iter_clips`, again

Their sampling options (frames, size, resize mode, padding, dtype, decoding strategy)
are one validated `Sampling`; `Sampling.for_model(model)` is a model's own (its
`num_frames` and frame `size`). Clip times are `start_s`/`end_s`, in seconds from the
first frame (`times.py`: NaN or None for a whole video).

The defaults reproduce the official VideoPrism preprocessing bit for bit, in memory
that does not grow with the video's length. numpy, PyAV and PIL only: no Keras here,
so this runs (and is tested) without a backend.
"""

from .api import Clip, iter_clips, load_clip, load_video
from .decode import FrameIndex, VideoDecodeError, VideoInfo, probe, scan
from .frames import RESIZE_MODES, fit_frame
from .loader import VideoBatchLoader, iter_video_batches
from .options import DTYPES, STRATEGIES, Sampling
from .sampling import sample_indices

__all__ = [
    "DTYPES",
    "RESIZE_MODES",
    "STRATEGIES",
    "Clip",
    "FrameIndex",
    "Sampling",
    "VideoBatchLoader",
    "VideoDecodeError",
    "VideoInfo",
    "fit_frame",
    "iter_clips",
    "iter_video_batches",
    "load_clip",
    "load_video",
    "probe",
    "sample_indices",
    "scan",
]
