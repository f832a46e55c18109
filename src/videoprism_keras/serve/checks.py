"""Checks of a request's values beyond their types, each failing as a 4xx that names
the parameter: the `where` filter (the grammar of `apps/where.py`), the `under`
folder, whether a clip id is in the index, and how many pixels an upload declares."""

import os
import warnings

from fastapi import HTTPException

from ..apps import IndexedClip
from ..apps.where import check_where
from .errors import BadInput
from .limits import MAX_UPLOAD_PIXELS
from .service import SearchService


def where_filter(where: str | None) -> str | None:
    """`check_where`, its refusal a 400 `where: <what was wrong>`; None: no filter."""
    try:
        return check_where(where)
    except ValueError as err:
        raise BadInput(f"where: {err}") from err


def under_folder(under: str | None) -> str | None:
    """A folder as the index stores paths (absolute), normalised; only compared with the
    index's paths, never opened. None: no folder (None, empty or blank)."""
    if under is None or not under.strip():
        return None
    if "\x00" in under or not os.path.isabs(under):
        raise BadInput(f"under: expected an absolute folder as the index shows paths "
                       f"(e.g. /videos/cats). Received: {under[:100]!r}")  # fmt: skip
    return os.path.normpath(under)


async def clip_or_404(service: SearchService, clip_id: str) -> IndexedClip:
    """The clip (see `VideoIndex.clip`); 404 when the index has no such clip."""
    row = await service.clip(clip_id)
    if row is None:
        raise HTTPException(404, f"no clip {clip_id} in the index")
    return row


def upload_pixels(path: str, kind: str, budget: int = MAX_UPLOAD_PIXELS) -> None:
    """Refuses (413) an uploaded image, or video whose frames, are larger than `budget`
    pixels, as its header says: read before any pixel is decoded, so a small file that
    declares a huge bitmap costs nothing. An unreadable header passes: the decoder then
    says what is wrong. Blocking (it reads the file): run it in a thread."""
    width = height = 0
    if kind.startswith("image/"):
        from PIL import Image

        try:
            with warnings.catch_warnings():  # PIL's warning for a large one: refused below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
        except Image.DecompressionBombError:  # PIL's own limit, far above ours
            width, height = budget + 1, 1
        except (OSError, ValueError):
            return
    else:
        from ..video.decode import VideoDecodeError, open_video

        try:
            container, stream = open_video(path)
        except VideoDecodeError:
            return
        with container:
            width, height = stream.width or 0, stream.height or 0
    if width * height > budget:
        what = "image is" if kind.startswith("image/") else "video's frames are"
        raise BadInput(f"the uploaded {what} {width}×{height} pixels, more than the "
                       f"{budget} taken; send a smaller one", 413)  # fmt: skip
