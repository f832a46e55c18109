"""`videoprism serve`: a search service and a web page over a video index.

    from videoprism_keras.serve import SearchService, create_app, serve
    service = SearchService(VideoIndex.load("my_index", in_memory=True), model, tokenizer)
    serve(service, host="127.0.0.1", port=8000)     # or: uvicorn on create_app(service)

Layout (FastAPI's "bigger applications" one):
    service.py       embed, search, label, moments, copies (kept per version): no HTTP
    batcher.py       the model behind a queue, concurrent texts batched
    app.py           `create_app`: routers, error handlers, the page, start and shutdown
    routes/          the API's routes, one `APIRouter` per group (info, search, clips,
                     moments, copies)
    uploads.py       a query sent as the body: checked, streamed to disk, embedded
    dependencies.py  what routes get through `Depends`: service, settings, token check
    checks.py        parameter checks beyond types (`where`: `apps/where.py`'s grammar)
    schemas.py       the JSON of requests and answers; limits.py: what a request may ask
    errors.py        every error as JSON; files.py: videos with Range
    middleware.py    HEAD wherever GET is, `nosniff` on every response
    page.py          the page's route and headers; static/: plain HTML, CSS and JS
    server.py        socket and uvicorn
    replicas.py      `--workers N`: N processes on the one port, restarted and stopped together
"""

from ..constants import SERVE_HOST, SERVE_PORT
from .app import create_app
from .server import ServeError, bind, check_exposure, run, url
from .service import SearchService


def serve(service: SearchService, host: str = SERVE_HOST, port: int = SERVE_PORT,
          token: str | None = None, log_level: str = "info") -> None:  # fmt: skip
    """Serves the search page and API for `service` until interrupted.

    Args:
        service: SearchService. The index and model to serve.
        host: str. The address to listen on; defaults to "127.0.0.1" (this machine only:
            any other needs a `token`).
        port: int. The port; defaults to 8000 (0: any free one).
        token: str or None. The bearer token the API wants; defaults to None.
        log_level: str. uvicorn's log level; defaults to "info".

    Raises:
        ServeError: for a host, port or token the server cannot run with.
    """
    check_exposure(host, token)
    sock = bind(host, port)
    print(f"videoprism: serving {service.index.uri} on {url(sock)}", flush=True)
    run(create_app(service, token=token, allowed_hosts=[host]), sock, log_level)


__all__ = ["SearchService", "ServeError", "create_app", "serve"]
