"""Search routes: by text, by an uploaded video or image, and by one of the index's clips
("more like this"). Each answers a `SearchResponse` and counts in the metrics by kind."""

import os
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request

from ..checks import clip_or_404, under_folder, where_filter
from ..dependencies import AppSettings, ClipId, PerVideo, Service, TopK, Under, UploadFolder, Where
from ..errors import BadInput
from ..limits import MAX_QUERY_CHARS, MAX_UPLOAD_BYTES
from ..schemas import Hit, SearchResponse
from ..service import SearchService
from ..uploads import embed_upload, upload_body

router = APIRouter(tags=["search"])


async def _search(service: SearchService, vector: np.ndarray, top_k: int, where: str | None,
                  under: str | None, per_video: bool, query: dict,
                  exclude: str | None = None) -> SearchResponse:  # fmt: skip
    """The top `top_k` hits for `vector`, filtered, with `query` (what was asked) echoed."""
    began = time.perf_counter()
    where, under = where_filter(where), under_folder(under)
    try:
        hits = await service.search(vector, top_k, where, under, per_video, exclude)
    except (ValueError, RuntimeError) as err:
        if where is None:
            raise
        first = str(err).splitlines()[0].split(", /")[0][:300]  # no source locations
        raise BadInput(f"where: the filter could not be evaluated ({first})") from err
    size, _ = await service.size()
    # "k": top_k's old name, echoed for one release.
    query = {
        **query,
        "top_k": top_k,
        "k": top_k,
        "where": where,
        "under": under,
        "per_video": per_video,
    }
    return SearchResponse(query=query, hits=[Hit.from_row(h, h.score) for h in hits],
                          index_size=size,
                          took_ms=(time.perf_counter() - began) * 1000)  # fmt: skip


@router.get("/search", response_model=SearchResponse)
async def search_text(service: Service,
                      q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                              description="what to look for, in words")],
                      top_k: TopK, where: Where = None, under: Under = None,
                      per_video: PerVideo = False) -> SearchResponse:  # fmt: skip
    """The clips that best match a sentence."""
    with service.metrics.measure("text"):
        if not q.strip():
            raise BadInput("q: empty; give the words to search for")
        if not service.has_text:
            raise BadInput("q: this index's model is video-only; search by video instead")
        vector = await service.embed_text(q.strip())
        return await _search(service, vector, top_k, where, under, per_video,
                             {"kind": "text", "q": q})  # fmt: skip


@router.post("/search/upload", response_model=SearchResponse,
             openapi_extra={"requestBody": upload_body(MAX_UPLOAD_BYTES)})  # fmt: skip
async def search_upload(service: Service, settings: AppSettings, folder: UploadFolder,
                        request: Request, top_k: TopK, where: Where = None,
                        under: Under = None, per_video: PerVideo = False,
                        filename: Annotated[str | None, Query(max_length=200,
                        description="the file's name, shown back only")] = None,
                        ) -> SearchResponse:  # fmt: skip
    """The clips most like a video or an image sent as the request body (its
    Content-Type says which: video/mp4, image/jpeg, …)."""
    with service.metrics.measure("upload"):
        where_filter(where), under_folder(under)  # refused before the upload is read
        vector, kind = await embed_upload(service, settings, folder, request)
        name = os.path.basename(filename or "") or None
        return await _search(
            service,
            vector,
            top_k,
            where,
            under,
            per_video,
            {"kind": "upload", "filename": name, "content_type": kind},
        )


@router.get("/clips/{clip_id}/similar", response_model=SearchResponse)
async def similar(service: Service, clip_id: ClipId, top_k: TopK, where: Where = None,
                  under: Under = None, per_video: PerVideo = False) -> SearchResponse:  # fmt: skip
    """More like this: the clips nearest to one of the index's (itself left out)."""
    with service.metrics.measure("similar"):
        row = await clip_or_404(service, clip_id)
        return await _search(
            service,
            row.vector,
            top_k,
            where,
            under,
            per_video,
            {"kind": "similar", "clip": clip_id},
            exclude=clip_id,
        )
