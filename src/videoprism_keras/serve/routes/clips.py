"""One clip of the index: its row, its poster, its video file (with HTTP Range), and its
zero-shot labels."""

import functools
from typing import Annotated

import anyio
from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import Response

from ..checks import clip_or_404
from ..dependencies import ClipId, Service
from ..errors import BadInput
from ..files import FileRefused, file_response
from ..limits import MAX_LABEL_CHARS
from ..schemas import Hit, Label, LabelsRequest, LabelsResponse

router = APIRouter(tags=["clips"])


@router.get("/clips/{clip_id}", response_model=Hit)
async def clip(service: Service, clip_id: ClipId) -> Hit:
    """One clip of the index."""
    return Hit.from_row(await clip_or_404(service, clip_id))


@router.get("/clips/{clip_id}/poster.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})  # fmt: skip
async def poster(service: Service, clip_id: ClipId) -> Response:
    """The clip's poster frame, as stored in the index (JPEG)."""
    data = await service.poster(clip_id)
    if data is None:
        row = await service.clip(clip_id)
        raise HTTPException(404, f"no clip {clip_id} in the index" if row is None else
                            f"clip {clip_id} has no poster")  # fmt: skip
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})  # fmt: skip


@router.head("/clips/{clip_id}/video", include_in_schema=False)  # a player's first ask
@router.get("/clips/{clip_id}/video", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}, "description": "the whole file"},
                       206: {"description": "the bytes asked for with Range"},
                       416: {"description": "a Range outside the file"}})  # fmt: skip
async def video(service: Service, clip_id: ClipId, request: Request) -> Response:
    """The video file the clip is in (HTTP Range supported, for seeking)."""
    row = await clip_or_404(service, clip_id)
    try:  # in a worker thread: opening a file may wait (a network mount), the loop must not
        return await anyio.to_thread.run_sync(functools.partial(
            file_response, row.path, request.headers.get("range"),
            head=request.method == "HEAD", file_id=row.id.partition("@")[0]))  # fmt: skip
    except FileRefused as err:
        raise HTTPException(404, f"clip {clip_id}: {err}") from err


@router.post("/clips/{clip_id}/labels", response_model=LabelsResponse)
async def labels(service: Service, clip_id: ClipId,
                 body: Annotated[LabelsRequest, Body()]) -> LabelsResponse:  # fmt: skip
    """Zero-shot labels for a clip: the probability of each label, as `classify`."""
    with service.metrics.measure("labels"):
        names = [label.strip() for label in body.labels]
        if any(not n or len(n) > MAX_LABEL_CHARS for n in names):
            raise BadInput(f"labels: each label is 1 to {MAX_LABEL_CHARS} characters")
        if len(set(names)) != len(names):
            raise BadInput("labels: the labels must be distinct")
        if not service.has_text:
            raise BadInput("labels: this index's model is video-only (no text tower)")
        row = await clip_or_404(service, clip_id)
        ranked = await service.labels(names, row.vector)
        return LabelsResponse(clip=Hit.from_row(row), labels=[Label(label=n, probability=p)
                                                              for n, p in ranked])  # fmt: skip
