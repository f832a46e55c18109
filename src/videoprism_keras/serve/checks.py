"""Checks of a request's values beyond their types, each failing as a 4xx that names
the parameter: the `where` filter (the grammar of `apps/where.py`), the `under`
folder, and whether a clip id is in the index."""

import os

from fastapi import HTTPException

from ..apps import IndexedClip
from ..apps.where import check_where
from .errors import BadInput
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
