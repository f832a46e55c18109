"""Copy routes: which videos of the index share content (whole duplicates and parts),
with the shared spans and the time offset between them; all groups, or those of one
clip's video. A whole-index job: the service keeps its answer per table version and
settings, and runs one at a time; one clip's copies are found for its video alone when no
whole-index answer is kept."""

import math
import time
from typing import Annotated

from fastapi import APIRouter, Query

from ..checks import clip_or_404
from ..dependencies import ClipId, Service
from ..errors import BadInput
from ..schemas import ClipCopiesResponse, CopiesResponse, Copy, CopyGroup, Hit, Video
from ..service import SearchService, copy_settings

router = APIRouter(tags=["copies"])

Threshold = Annotated[float | None, Query(description="the cosine similarity two windows need "
                                          "to count as the same content, in (0, 1]; default: "
                                          "the library's")]  # fmt: skip
MinSeconds = Annotated[float | None, Query(description="the shortest shared span (s), > 0; "
                                           "default: the library's")]  # fmt: skip


def _checked(threshold: float | None, min_seconds: float | None) -> None:
    if threshold is not None and not (math.isfinite(threshold) and 0 < threshold <= 1):
        raise BadInput(f"threshold: expected a similarity in (0, 1]. Received: {threshold}")
    if min_seconds is not None and not (math.isfinite(min_seconds) and min_seconds > 0):
        raise BadInput(f"min_seconds: expected a positive number of seconds. "
                       f"Received: {min_seconds}")  # fmt: skip


async def _groups(service: SearchService, threshold: float | None, min_seconds: float | None,
                  path: str | None = None):  # fmt: skip
    _checked(threshold, min_seconds)
    try:
        if path is None:
            return await service.copies(threshold, min_seconds)
        return await service.clip_copies(path, threshold, min_seconds)
    except ValueError as err:  # e.g. an index of whole videos: no windows to match
        raise BadInput(str(err).splitlines()[0][:300]) from err


@router.get("/copies", response_model=CopiesResponse)
async def copies(service: Service, threshold: Threshold = None,
                 min_seconds: MinSeconds = None) -> CopiesResponse:  # fmt: skip
    """Every group of videos that share content: each copy with its two spans and the
    offset between them. The first request for a table version and settings runs the
    whole index (seconds to minutes); later ones get its kept answer. One run at a time:
    a request for other settings meanwhile is a 503 with Retry-After."""
    began = time.perf_counter()
    with service.metrics.measure("copies"):
        groups, videos, version, cached = await _groups(service, threshold, min_seconds)
        threshold, min_seconds = copy_settings(threshold, min_seconds)  # as used: no nulls
        return CopiesResponse(
            query={"threshold": threshold, "min_seconds": min_seconds},
            groups=[CopyGroup(**g.as_dict()) for g in groups],
            videos={path: Video.from_row(hit) for path, hit in videos.items()},
            index_version=version, cached=cached,
            took_ms=(time.perf_counter() - began) * 1000)  # fmt: skip


@router.get("/clips/{clip_id}/copies", response_model=ClipCopiesResponse)
async def clip_copies(service: Service, clip_id: ClipId, threshold: Threshold = None,
                      min_seconds: MinSeconds = None) -> ClipCopiesResponse:  # fmt: skip
    """The copies of a clip's video: every span it shares with another video of the
    index, turned so that `a` is the clip's video (a time t in the other video is
    t + offset_s in it)."""
    began = time.perf_counter()
    with service.metrics.measure("copies"):
        _checked(threshold, min_seconds)
        row = await clip_or_404(service, clip_id)
        groups, videos, version, cached = await _groups(service, threshold, min_seconds, row.path)
        found = []
        for group in groups:
            for copy in group.copies:
                pair = copy.as_dict()
                if pair["b"]["path"] == row.path:  # turned: b's times are a's, less the offset
                    pair = {**pair, "a": pair["b"], "b": pair["a"], "offset_s": -pair["offset_s"]}
                if pair["a"]["path"] == row.path and pair["b"]["path"] != row.path:
                    found.append(Copy(**pair))
        found.sort(key=lambda c: (c.a.start_s or 0.0, -c.score))
        shown = {row.path} | {c.b.path for c in found}
        return ClipCopiesResponse(
            clip=Hit.from_row(row), copies=found,
            videos={p: Video.from_row(hit) for p, hit in videos.items() if p in shown},
            index_version=version, cached=cached,
            took_ms=(time.perf_counter() - began) * 1000)  # fmt: skip
