"""Moment routes: where in the index's videos a query happens, as start–end moments best
first, with the whole similarity curve of every video they are in (the page's timeline).
By text, by an uploaded video or image, and by one of the index's clips; `video` keeps
one video's moments (the player's timeline of a search hit)."""

import time
from typing import Annotated, NamedTuple

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from ...apps.identity import clip_id as make_clip_id
from ...apps.index.store import sql_string
from ...video.decode import VideoDecodeError
from ..checks import clip_or_404, under_folder, where_filter
from ..dependencies import AppSettings, ClipId, Service, TopK, Under, UploadFolder, Where
from ..errors import BadInput
from ..limits import (
    CLIP_ID,
    MAX_CURVE_POINTS,
    MAX_QUERY_CHARS,
    MAX_REFINED_MOMENTS,
    MAX_UPLOAD_BYTES,
)
from ..schemas import Curve, Moment, MomentsResponse, Video
from ..service import SearchService
from ..uploads import embed_upload, upload_body

router = APIRouter(tags=["moments"])

Refine = Annotated[bool, Query(description="refine each moment coarse-to-fine with the model "
                               "(decodes the seconds around it); false: the index's windows "
                               "as they are, at search speed")]  # fmt: skip
Shots = Annotated[bool, Query(description="snap the moments' edges to shot cuts (with refine; "
                              "needs PySceneDetect)")]  # fmt: skip
OneVideo = Annotated[str | None, Query(pattern=CLIP_ID, description="a clip id: only the "
                                       "moments of that clip's video")]  # fmt: skip


class Scope(NamedTuple):
    """A request's filters, checked: `where` and `under` as given, and `scoped`, the
    filter the moments are found with (`where`, and the `video` asked for)."""

    where: str | None
    under: str | None
    scoped: str | None


async def _scope(service: SearchService, top_k: int, where: str | None, under: str | None,
                 video: str | None, refine: bool, shots: bool) -> Scope:  # fmt: skip
    """The request's filters and options checked before any long work (an upload stored,
    a query embedded): each refusal a 4xx that names its parameters."""
    where, under = where_filter(where), under_folder(under)
    if shots and not refine:
        raise BadInput("shots: snapping to shot cuts is part of the refinement; "
                       "drop shots or set refine=true")  # fmt: skip
    if refine and top_k > MAX_REFINED_MOMENTS:
        raise BadInput(f"top_k: at most {MAX_REFINED_MOMENTS} moments are refined with "
                       f"refine=true (each is decoded and embedded again). Received: "
                       f"top_k={top_k}; ask fewer, or refine=false")  # fmt: skip
    scoped = where
    if video is not None:
        path = sql_string((await clip_or_404(service, video)).path)
        scoped = f"path = {path}" if where is None else f"({where}) AND path = {path}"
    return Scope(where, under, scoped)


async def _moments(service: SearchService, vector: np.ndarray, top_k: int, scope: Scope,
                   video: str | None, refine: bool, shots: bool,
                   query: dict) -> MomentsResponse:  # fmt: skip
    began = time.perf_counter()
    try:  # the index's own stage: what fails here is the request's (or the index's) doing
        moments, meta = await service.coarse_moments(vector, top_k, scope.scoped, scope.under)
    except (ValueError, RuntimeError) as err:  # an index without windows, a filter Lance refused
        first = str(err).splitlines()[0].split(", /")[0][:300]  # no source locations
        if scope.where is not None and not await _filter_works(service, vector, scope.where):
            first = f"where: the filter could not be evaluated ({first})"
        raise BadInput(first) from err
    if refine and moments:  # the model's failures (out of memory…) are the generic 500
        try:
            moments = await service.refine_moments(moments, vector, meta, shots)
        except VideoDecodeError as err:  # a file changed or gone since it was indexed
            raise BadInput(f"refine: {str(err).splitlines()[0][:300]}; re-index it, or ask "
                           "with refine=false", 404) from err  # fmt: skip
        except ImportError as err:
            raise BadInput(f"shots: finding shot cuts needs PySceneDetect ({err}): "
                           "pip install 'videoprism-keras[shots]'") from err  # fmt: skip
    curves, videos = await service.moment_curves(vector, moments)
    size, _ = await service.size()
    query = {**query, "top_k": top_k, "where": scope.where, "under": scope.under,
             "video": video, "refine": refine, "shots": shots}  # fmt: skip

    def answer() -> MomentsResponse:  # thousands of values per curve: off the event loop
        by_path = {c.path: c for c in curves}
        return MomentsResponse(
            query=query,
            moments=[_moment(m, by_path.get(m.path), videos.get(m.path)) for m in moments],
            curves=[thinned(c) for c in curves],
            videos={path: Video.from_row(hit) for path, hit in videos.items()},
            refined=refine, index_size=size,
            took_ms=(time.perf_counter() - began) * 1000)  # fmt: skip

    return await run_in_threadpool(answer)


def thinned(curve, points: int = MAX_CURVE_POINTS) -> Curve:
    """A curve as sent: at most `points` values, each the highest of a run of consecutive
    windows and spanning them (the first's start to the latest end), so that its peaks
    survive at their places, as a plot of that many pixels would show them."""
    if len(curve.scores) <= points:
        return Curve(**curve.as_dict())
    # Runs of one or more windows (there are more windows than points), in order.
    firsts = np.linspace(0, len(curve.scores), points + 1).round().astype(np.int64)[:-1]
    return Curve(path=curve.path, start_s=curve.start_s[firsts].tolist(),
                 end_s=np.maximum.reduceat(curve.end_s, firsts).tolist(),
                 scores=np.maximum.reduceat(curve.scores, firsts).tolist())  # fmt: skip


async def _filter_works(service: SearchService, vector: np.ndarray, where: str) -> bool:
    """Whether a search with the filter alone works: which of the two a failure was."""
    try:
        await service.search(vector, 1, where)
    except (ValueError, RuntimeError):
        return False
    return True


def _moment(moment, curve, video) -> Moment:
    """A moment, with the indexed window at its peak (its poster): the best-scoring window
    that overlaps it, named as the index names it (the video's file id, the times)."""
    found = Moment(**moment.as_dict())
    if curve is None or video is None or not len(curve.scores):
        return found
    starts, ends = np.asarray(curve.start_s), np.asarray(curve.end_s)
    inside = np.flatnonzero((starts < moment.end_s) & (ends > moment.start_s))
    if not len(inside):
        return found
    best = inside[np.argmax(np.asarray(curve.scores)[inside])]
    clip = make_clip_id(video.id.partition("@")[0], starts[best], ends[best])
    return found.model_copy(update={"clip": clip, "poster_url": f"api/clips/{clip}/poster.jpg"})


@router.get("/moments", response_model=MomentsResponse)
async def moments_text(service: Service,
                       q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                               description="what to look for, in words")],
                       top_k: TopK, where: Where = None, under: Under = None,
                       video: OneVideo = None, refine: Refine = True,
                       shots: Shots = False) -> MomentsResponse:  # fmt: skip
    """The moments (start–end) that best match a sentence, best first, with the
    similarity curve of each video they are in."""
    with service.metrics.measure("moments"):
        if not q.strip():
            raise BadInput("q: empty; give the words to search for")
        if not service.has_text:
            raise BadInput("q: this index's model is video-only; search by video instead")
        scope = await _scope(service, top_k, where, under, video, refine, shots)  # first
        vector = await service.embed_text(q.strip())
        return await _moments(service, vector, top_k, scope, video, refine, shots,
                              {"kind": "text", "q": q})  # fmt: skip


@router.post("/moments", response_model=MomentsResponse,
             openapi_extra={"requestBody": upload_body(MAX_UPLOAD_BYTES)})  # fmt: skip
async def moments_upload(service: Service, settings: AppSettings, folder: UploadFolder,
                         request: Request, top_k: TopK, where: Where = None,
                         under: Under = None, video: OneVideo = None, refine: Refine = True,
                         shots: Shots = False,
                         filename: Annotated[str | None, Query(max_length=200,
                         description="the file's name, shown back only")] = None,
                         ) -> MomentsResponse:  # fmt: skip
    """The moments most like a video or an image sent as the request body (its
    Content-Type says which: video/mp4, image/jpeg, …)."""
    with service.metrics.measure("moments_upload"):
        # Refused before the upload is read.
        scope = await _scope(service, top_k, where, under, video, refine, shots)
        vector, kind = await embed_upload(service, settings, folder, request)
        name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1] or None
        query = {"kind": "upload", "filename": name, "content_type": kind}
        return await _moments(service, vector, top_k, scope, video, refine, shots, query)


@router.get("/clips/{clip_id}/moments", response_model=MomentsResponse)
async def moments_like(service: Service, clip_id: ClipId, top_k: TopK, where: Where = None,
                       under: Under = None, video: OneVideo = None, refine: Refine = True,
                       shots: Shots = False) -> MomentsResponse:  # fmt: skip
    """The moments most like one of the index's clips (its own among them)."""
    with service.metrics.measure("moments_similar"):
        scope = await _scope(service, top_k, where, under, video, refine, shots)
        row = await clip_or_404(service, clip_id)
        return await _moments(service, row.vector, top_k, scope, video, refine, shots,
                              {"kind": "similar", "clip": clip_id})  # fmt: skip
