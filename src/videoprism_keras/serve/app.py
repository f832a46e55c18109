"""The ASGI app: the routes of `routes/` under /api, the error handlers, the page, and
what runs at start and at shutdown (the model queue, the uploads' folder).

    /                              the search page (static, no build step, works offline)
    /api/health                    liveness (no token needed)
    /api/info, /api/metrics        the index (size, preset, version) and query statistics
    /api/search?q=…                text search; top_k, where, under, per_video filter it
    /api/search/upload             search by a video or an image sent as the request body
    /api/moments?q=…               moments (start–end) best first, with their videos' curves;
                                   POST: by an upload; /api/clips/{id}/moments: by a clip
    /api/copies                    groups of videos that share content, with offsets;
                                   /api/clips/{id}/copies: those of one clip's video
    /api/clips/{id}                a clip; …/similar ("more like this"), …/poster.jpg,
                                   …/video (HTTP Range), …/labels (zero-shot, POST)

With a token, every /api route but /api/health wants `Authorization: Bearer <token>`
(or the cookie the page sets). Every request first passes `guard.py` (its Host, its
Origin, its body's size). The service and the settings live on `app.state`,
where the routes' dependencies (`dependencies.py`) find them.
"""

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from ..constants import VERSION
from . import page
from .dependencies import Settings, require_token
from .errors import add_error_handlers
from .guard import RequestGuard
from .limits import MAX_UPLOAD_BYTES
from .middleware import HeadAndNosniff
from .routes import clips, copies, info, moments, search
from .schemas import ERRORS
from .service import SearchService
from .uploads import upload_body

UPLOAD_PATH = "/api/search/upload"
# Every route that takes an upload as its body: the upload's limit, not the other bodies'.
UPLOAD_PATHS = (UPLOAD_PATH, "/api/moments")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Starts the model queue (and its warm-up) and makes the uploads' folder; stops and
    removes them at shutdown."""
    service, settings = app.state.service, app.state.settings
    app.state.uploads["dir"] = tempfile.mkdtemp(prefix="videoprism-serve-")
    service.queue.start()
    if settings.warm_up and service.has_text:  # compiled while the first requests queue behind it
        warming = asyncio.ensure_future(service.queue.run(service.queue.warm_up))
        warming.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        yield
    finally:
        await service.queue.stop()
        shutil.rmtree(app.state.uploads.pop("dir"), ignore_errors=True)


def create_app(
    service: SearchService,
    token: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    warm_up: bool = True,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The ASGI app over a `SearchService`.

    Args:
        service: SearchService. The index and model to serve.
        token: str or None. The bearer token the API wants (every /api route but
            /api/health); defaults to None, no token.
        max_upload_bytes: int. The largest upload taken for a search by example;
            defaults to `MAX_UPLOAD_BYTES` (64 MiB).
        warm_up: bool. Whether the text model's shapes are compiled at start (see
            `ModelQueue.warm_up`); defaults to True.
        allowed_hosts: list of str, or None. The names (a `Host` header's, any port) the
            app answers to besides localhost, 127.0.0.1 and [::1]; "*" or "0.0.0.0": any.
            Defaults to None, the loopback names only (see `guard.py`).

    Returns:
        The FastAPI app; its `state` holds `service`, `settings` and `uploads` (the
        uploads' folder as `uploads["dir"]` while it runs).
    """
    app = FastAPI(title="VideoPrism search", version=VERSION, lifespan=lifespan,
                  description="Search a VideoPrism video index by text, by example video or "
                  "image, or by one of its clips; watch them; label them zero-shot.")  # fmt: skip
    app.state.service = service
    app.state.settings = Settings(token, max_upload_bytes, warm_up)
    app.state.uploads = {}
    app.include_router(info.public, prefix="/api")
    for router in (info.router, search.router, clips.router, moments.router, copies.router):
        app.include_router(router, prefix="/api", dependencies=[Depends(require_token)],
                           responses=ERRORS)  # fmt: skip
    add_error_handlers(app)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=str(page.STATIC)), name="static")
    # Added first, so innermost: its refusal of a body too large, raised while a route
    # reads it, reaches the route's handlers as itself (an "http" middleware between
    # them would wrap it into a group, a 400 "error parsing the body").
    app.add_middleware(RequestGuard, allowed_hosts=allowed_hosts,
                       body_limits=dict.fromkeys(UPLOAD_PATHS, max_upload_bytes))  # fmt: skip
    app.middleware("http")(page.static_headers)
    app.add_middleware(HeadAndNosniff, router=app.router)
    _describe_upload_limit(app, max_upload_bytes)
    return app


def _describe_upload_limit(app: FastAPI, max_upload_bytes: int) -> None:
    """The OpenAPI schema states this app's upload limit (the route, shared by every
    app, is declared with the default one)."""
    make_schema = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = make_schema()
            for path in UPLOAD_PATHS:
                schema["paths"][path]["post"]["requestBody"] = upload_body(max_upload_bytes)
        return app.openapi_schema

    app.openapi = openapi
