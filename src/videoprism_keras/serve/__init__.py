"""`videoprism serve`: a search service and a web page over a video index.

    from videoprism_keras.serve import SearchService, create_app, serve
    service = SearchService(VideoIndex.load("my_index", in_memory=True), model, tokenizer)
    serve(service, host="127.0.0.1", port=8000)     # or: uvicorn on create_app(service)

Layout: `service.py` (embed, search, label: no HTTP), `batcher.py` (the model behind a
queue), `files.py` (videos with Range), `app.py` (routes, checks, errors, the page),
`server.py` (socket and uvicorn), `static/` (the page: plain HTML, CSS and JS).
"""

from .app import create_app
from .server import ServeError, bind, check_exposure, run, url
from .service import SearchService


def serve(service, host="127.0.0.1", port=8000, token=None, log_level="info"):
    """Serves the search page and API for `service` until interrupted."""
    check_exposure(host, token)
    sock = bind(host, port)
    print(f"videoprism: serving {service.index.uri} on {url(sock)}", flush=True)
    run(create_app(service, token=token), sock, log_level)


__all__ = ["SearchService", "ServeError", "create_app", "serve"]
