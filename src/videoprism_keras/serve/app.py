"""The HTTP side of the search service: routes, input checks, errors, the page.

    /                              the search page (static, no build step, works offline)
    /api/health                    liveness (no token needed)
    /api/info, /api/metrics        the index (size, preset, version) and query statistics
    /api/search?q=…                text search; k, where, under, per_video filter it
    /api/search/upload             search by a video or an image sent as the request body
    /api/clips/{id}                a clip; …/similar ("more like this"), …/poster.jpg,
                                   …/video (HTTP Range), …/labels (zero-shot, POST)

Every error is JSON `{"error": "…"}` with a 4xx status that says what was wrong with
which parameter; a failure of our own is a 500 that says nothing more (the traceback
goes to the server's log, never to the client). With a token, every /api route but
/api/health wants `Authorization: Bearer <token>` (or the cookie the page sets).
"""

import asyncio
import contextlib
import hmac
import logging
import os
import re
import shutil
import tempfile
import time
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..constants import VERSION
from .files import FileRefused, file_response
from .service import SearchService

log = logging.getLogger(__name__)

MAX_K = 100
MAX_QUERY_CHARS = 500
MAX_WHERE_CHARS = 500
MAX_LABELS = 64
MAX_LABEL_CHARS = 100
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
UPLOAD_CHUNK = 1024 * 1024
UPLOAD_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
                "video/x-matroska": ".mkv", "video/ogg": ".ogv", "video/x-msvideo": ".avi",
                "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
                "image/webp": ".webp", "image/bmp": ".bmp"}  # fmt: skip
TOKEN_COOKIE = "videoprism_token"
CLIP_ID = r"^[0-9a-f]{32}@(whole|\d+\.\d{6}-\d+\.\d{6})$"
# What a `where` filter may say: the index's columns, literals, comparisons and logic.
WHERE_COLUMNS = ("path", "start_s", "end_s", "duration_s", "size_bytes")
WHERE_WORDS = {"and", "or", "not", "like", "ilike", "in", "between", "is", "null", "true",
               "false", "starts_with", "lower", "upper"}  # fmt: skip
_WHERE_TOKEN = re.compile(r"\s+|'(?:[^']|'')*'|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+"
                          r"|[A-Za-z_][A-Za-z0-9_]*|<=|>=|<>|!=|[=<>(),+*/%-]")  # fmt: skip
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' "
    "blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}  # fmt: skip


# ------------------------------------------------------------------ responses
class Hit(BaseModel):
    id: str = Field(description="the clip's id: <file id>@<start>-<end> (or @whole)")
    path: str = Field(description="the video file, as the index holds it")
    name: str = Field(description="the file's name")
    start_s: float | None = Field(description="the clip's start in the video (s); null: whole")
    end_s: float | None
    duration_s: float | None = Field(description="the whole video's duration (s)")
    score: float | None = Field(None, description="cosine similarity to the query")
    poster_url: str
    video_url: str


class SearchResponse(BaseModel):
    query: dict = Field(description="what was searched for, and the filters")
    hits: list[Hit]
    index_size: int = Field(description="clips in the index when it was searched")
    took_ms: float


class Label(BaseModel):
    label: str
    probability: float


class LabelsResponse(BaseModel):
    clip: Hit
    labels: list[Label] = Field(description="every label, most probable first")


class LabelsRequest(BaseModel):
    labels: list[str] = Field(description="free-text class names", min_length=1,
                              max_length=MAX_LABELS)  # fmt: skip


class IndexInfo(BaseModel):
    uri: str
    size: int = Field(description="clips")
    version: int | None = Field(description="the table's latest committed version")
    preset: str | None
    dim: int | None
    num_frames: int | None
    frame_size: int | list[int] | None
    clip_seconds: float | None
    stride_seconds: float | None
    dtype: str | None
    text_search: bool = Field(description="whether the model takes text (an LvT preset)")
    videoprism_keras: str
    limits: dict


class Health(BaseModel):
    status: str


class KindMetrics(BaseModel):
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


class Metrics(BaseModel):
    uptime_s: float
    queries: int
    errors: int
    by_kind: dict[str, KindMetrics]
    text_batches: int = Field(description="model calls that embedded texts")
    texts_batched: int = Field(description="texts embedded in those calls")


class Error(BaseModel):
    error: str


ERRORS = {code: {"model": Error} for code in (400, 401, 404, 413, 415, 422)}


class BadInput(HTTPException):
    def __init__(self, message, status=400):
        super().__init__(status, message)


# ------------------------------------------------------------------ checks
def check_where(where: str | None) -> str | None:
    """A `where` filter made only of what a filter over the index's columns needs;
    anything else (statements, comments, quoting tricks, other names) is refused."""
    if where is None or not where.strip():
        return None
    if len(where) > MAX_WHERE_CHARS:
        raise BadInput(f"where: at most {MAX_WHERE_CHARS} characters")
    position, depth = 0, 0
    while position < len(where):
        match = _WHERE_TOKEN.match(where, position)
        if match is None or where.startswith(("--", "/*"), position):
            shown = where[position : position + 10]
            raise BadInput(f"where: unexpected {shown!r} at character {position + 1}; a filter "
                           "is a SQL predicate over " + ", ".join(WHERE_COLUMNS))  # fmt: skip
        token = match.group()
        if token[0].isalpha() or token[0] == "_":
            if token not in WHERE_COLUMNS and token.lower() not in WHERE_WORDS:
                raise BadInput(f"where: unknown name {token!r}; the columns are "
                               + ", ".join(WHERE_COLUMNS))  # fmt: skip
        depth += token == "("
        depth -= token == ")"
        if depth < 0:
            raise BadInput("where: unbalanced parentheses")
        position = match.end()
    if depth:
        raise BadInput("where: unbalanced parentheses")
    return where


def check_under(under: str | None) -> str | None:
    """A folder as the index stores paths (absolute); only compared, never opened."""
    if under is None or not under.strip():
        return None
    if "\x00" in under or not os.path.isabs(under):
        raise BadInput(f"under: expected an absolute folder as the index shows paths "
                       f"(e.g. /videos/cats). Received: {under[:100]!r}")  # fmt: skip
    return os.path.normpath(under)


def _hit(row, score=None) -> Hit:
    def time_(t):
        return None if t is None or t != t else float(t)

    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    if isinstance(row, dict):
        start, end, duration = get("start_s"), get("end_s"), get("duration_s")
    else:
        start, end, duration = row.start, row.end, row.duration
    clip = get("id")
    return Hit(id=clip, path=get("path"), name=os.path.basename(get("path")),
               start_s=time_(start), end_s=time_(end), duration_s=time_(duration),
               score=score, poster_url=f"api/clips/{clip}/poster.jpg",
               video_url=f"api/clips/{clip}/video")  # fmt: skip


# ------------------------------------------------------------------ the app
def create_app(service: SearchService, token: str | None = None,
               max_upload_bytes: int = MAX_UPLOAD_BYTES, warm_up=True) -> FastAPI:  # fmt: skip
    """The ASGI app over a `SearchService`; `token` makes the API want a bearer token;
    `warm_up` compiles the text model's shapes at start (see `ModelQueue.warm_up`)."""
    uploads: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        uploads["dir"] = tempfile.mkdtemp(prefix="videoprism-serve-")
        service.queue.start()
        if warm_up and service.has_text:  # compiled while the first requests queue behind it
            warming = asyncio.ensure_future(service.queue.run(service.queue.warm_up))
            warming.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            yield
        finally:
            await service.queue.stop()
            shutil.rmtree(uploads.pop("dir"), ignore_errors=True)

    app = FastAPI(title="VideoPrism search", version=VERSION, lifespan=lifespan,
                  description="Search a VideoPrism video index by text, by example video or "
                  "image, or by one of its clips; watch them; label them zero-shot.")  # fmt: skip
    app.state.service, app.state.uploads = service, uploads

    def authorised(request: Request):
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer":
            value = request.cookies.get(TOKEN_COOKIE, "")
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "a bearer token is needed: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    api = APIRouter(prefix="/api", dependencies=[Depends(authorised)], responses=ERRORS)
    K = Annotated[int, Query(ge=1, le=MAX_K, description="how many hits")]
    Where = Annotated[
        str | None,
        Query(
            description="SQL predicate over " + ", ".join(WHERE_COLUMNS), max_length=MAX_WHERE_CHARS
        ),
    ]
    Under = Annotated[str | None, Query(description="only videos in this folder (absolute)")]
    PerVideo = Annotated[bool, Query(description="the best clip of each video")]
    ClipId = Annotated[str, Path(pattern=CLIP_ID, description="a hit's id")]

    async def timed(kind, work):
        began = time.perf_counter()
        ok = False
        try:
            result = await work
            ok = True
            return result
        finally:
            service.metrics.record(kind, time.perf_counter() - began, ok)

    async def search(kind, vector, k, where, under, per_video, query, exclude=None):
        began = time.perf_counter()
        where, under = check_where(where), check_under(under)
        try:
            hits = await service.search(vector, k, where, under, per_video, exclude)
        except (ValueError, RuntimeError) as err:
            if where is None:
                raise
            first = str(err).splitlines()[0].split(", /")[0][:300]  # no source locations
            raise BadInput(f"where: the filter could not be evaluated ({first})") from err
        size, _ = await service.size()
        query = {**query, "k": k, "where": where, "under": under, "per_video": per_video}
        return SearchResponse(query=query, hits=[_hit(h, h.score) for h in hits],
                              index_size=size,
                              took_ms=(time.perf_counter() - began) * 1000)  # fmt: skip

    async def clip_or_404(clip_id):
        row = await service.clip(clip_id)
        if row is None:
            raise HTTPException(404, f"no clip {clip_id} in the index")
        return row

    @app.get("/api/health", response_model=Health, tags=["service"])
    async def health():
        """The service is up (no token needed)."""
        return Health(status="ok")

    @api.get("/info", response_model=IndexInfo, tags=["service"])
    async def info():
        """The index: its size and version (now), preset and sampling."""
        size, version = await service.size()
        meta = service.index.meta
        return IndexInfo(uri=str(service.index.uri), size=size, version=version,
                         preset=meta.get("preset"), dim=meta.get("dim"),
                         num_frames=meta.get("num_frames"), frame_size=meta.get("size"),
                         clip_seconds=meta.get("clip_seconds"),
                         stride_seconds=meta.get("stride_seconds"), dtype=meta.get("dtype"),
                         text_search=service.has_text, videoprism_keras=VERSION,
                         limits={"k": MAX_K, "upload_bytes": max_upload_bytes,
                                 "upload_types": sorted(UPLOAD_TYPES),
                                 "labels": MAX_LABELS})  # fmt: skip

    @api.get("/metrics", response_model=Metrics, tags=["service"])
    async def metrics():
        """Queries, errors and latency (p50, p95) per kind since the start."""
        return Metrics(**service.metrics.summary(), text_batches=service.queue.batches,
                       texts_batched=service.queue.texts)  # fmt: skip

    @api.get("/search", response_model=SearchResponse, tags=["search"])
    async def search_text(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                                  description="what to look for, in words")],
                          k: K = 12, where: Where = None, under: Under = None,
                          per_video: PerVideo = False):  # fmt: skip
        """The clips that best match a sentence."""

        async def work():
            if not q.strip():
                raise BadInput("q: empty; give the words to search for")
            if not service.has_text:
                raise BadInput("q: this index's model is video-only; search by video instead")
            vector = await service.embed_text(q.strip())
            return await search("text", vector, k, where, under, per_video,
                                {"kind": "text", "q": q})  # fmt: skip

        return await timed("text", work())

    @api.post("/search/upload", response_model=SearchResponse, tags=["search"],
              openapi_extra={"requestBody": {"required": True, "description":
                             f"the video or image itself (at most {max_upload_bytes} bytes)",
                             "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                         for t in UPLOAD_TYPES}}})  # fmt: skip
    async def search_upload(request: Request, k: K = 12, where: Where = None,
                            under: Under = None, per_video: PerVideo = False,
                            filename: Annotated[str | None, Query(max_length=200,
                            description="the file's name, shown back only")] = None):  # fmt: skip
        """The clips most like a video or an image sent as the request body (its
        Content-Type says which: video/mp4, image/jpeg, …)."""

        async def work():
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in UPLOAD_TYPES:
                raise BadInput(f"Content-Type {kind or '(none)'} is not a video or image type "
                               "taken here: " + ", ".join(sorted(UPLOAD_TYPES)), 415)  # fmt: skip
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or
                                         int(declared) > max_upload_bytes):  # fmt: skip
                raise BadInput(f"the upload is larger than {max_upload_bytes} bytes", 413)
            where_, under_ = check_where(where), check_under(under)
            fd, path = tempfile.mkstemp(suffix=UPLOAD_TYPES[kind], dir=uploads["dir"])
            try:
                received = 0
                with os.fdopen(fd, "wb") as out:
                    async for chunk in request.stream():
                        received += len(chunk)
                        if received > max_upload_bytes:
                            raise BadInput(f"the upload is larger than {max_upload_bytes} bytes",
                                           413)  # fmt: skip
                        out.write(chunk)
                if not received:
                    raise BadInput("the request body is empty: send the video or image itself")
                try:
                    vector = await service.embed_file(path)
                except Exception as err:  # whatever the decoder says about a bad file
                    log.info("upload not decodable: %s", err)
                    raise BadInput(f"the upload is not a readable {kind.split('/')[0]} "
                                   f"(declared {kind})", 415) from err  # fmt: skip
            finally:
                with contextlib.suppress(OSError):
                    os.remove(path)
            name = os.path.basename(filename or "") or None
            return await search("upload", vector, k, where_, under_, per_video,
                                {"kind": "upload", "filename": name,
                                 "content_type": kind})  # fmt: skip

        return await timed("upload", work())

    @api.get("/clips/{clip_id}", response_model=Hit, tags=["clips"])
    async def clip(clip_id: ClipId):
        """One clip of the index."""
        return _hit(await clip_or_404(clip_id))

    @api.get("/clips/{clip_id}/similar", response_model=SearchResponse, tags=["search"])
    async def similar(clip_id: ClipId, k: K = 12, where: Where = None, under: Under = None,
                      per_video: PerVideo = False):  # fmt: skip
        """More like this: the clips nearest to one of the index's (itself left out)."""

        async def work():
            row = await clip_or_404(clip_id)
            return await search("similar", row["vector"], k, where, under, per_video,
                                {"kind": "similar", "clip": clip_id}, exclude=clip_id)  # fmt: skip

        return await timed("similar", work())

    @api.get("/clips/{clip_id}/poster.jpg", tags=["clips"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}})  # fmt: skip
    async def poster(clip_id: ClipId):
        """The clip's poster frame, as stored in the index (JPEG)."""
        data = await service.poster(clip_id)
        if data is None:
            row = await service.clip(clip_id)
            raise HTTPException(404, f"no clip {clip_id} in the index" if row is None else
                                f"clip {clip_id} has no poster")  # fmt: skip
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})  # fmt: skip

    @api.head("/clips/{clip_id}/video", include_in_schema=False)  # a player's first ask
    @api.get("/clips/{clip_id}/video", tags=["clips"], response_class=Response,
             responses={200: {"content": {"video/mp4": {}}, "description": "the whole file"},
                        206: {"description": "the bytes asked for with Range"},
                        416: {"description": "a Range outside the file"}})  # fmt: skip
    async def video(clip_id: ClipId, request: Request):
        """The video file the clip is in (HTTP Range supported, for seeking)."""
        row = await clip_or_404(clip_id)
        try:
            return file_response(row["path"], request.headers.get("range"),
                                 head=request.method == "HEAD")  # fmt: skip
        except FileRefused as err:
            raise HTTPException(404, f"clip {clip_id}: {err}") from err

    @api.post("/clips/{clip_id}/labels", response_model=LabelsResponse, tags=["clips"])
    async def labels(clip_id: ClipId, body: Annotated[LabelsRequest, Body()]):
        """Zero-shot labels for a clip: the probability of each label, as `classify`."""

        async def work():
            names = [label.strip() for label in body.labels]
            if any(not n or len(n) > MAX_LABEL_CHARS for n in names):
                raise BadInput(f"labels: each label is 1 to {MAX_LABEL_CHARS} characters")
            if len(set(names)) != len(names):
                raise BadInput("labels: the labels must be distinct")
            if not service.has_text:
                raise BadInput("labels: this index's model is video-only (no text tower)")
            row = await clip_or_404(clip_id)
            ranked = await service.labels(names, row["vector"])
            return LabelsResponse(clip=_hit(row), labels=[Label(label=n, probability=p)
                                                          for n, p in ranked])  # fmt: skip

        return await timed("labels", work())

    app.include_router(api)
    _errors(app)
    _page(app)
    return app


def _errors(app):
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err):
        message = err.detail if isinstance(err.detail, str) else "request refused"
        if err.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.url.path[:200]}"
        return JSONResponse({"error": message}, err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err):
        parts = []
        for e in err.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(parts)}, 422)

    @app.exception_handler(Exception)
    async def crashed(request, err):
        log.exception("videoprism serve: %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error (see the server's log)"}, 500)


def _page(app):
    static = resources.files("videoprism_keras.serve") / "static"
    page = (static / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index_page():
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.middleware("http")
    async def headers(request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/static/"):
            response.headers.update(PAGE_HEADERS)
        return response
