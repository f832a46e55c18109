"""Every error as JSON `{"error": "…"}`: a 4xx that says what was wrong with which
parameter, or a 500 that says nothing more (the traceback goes to the server's log,
never to the client). A client gone mid-request is one line in the log."""

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .limits import COPIES_RETRY_AFTER_S
from .service import CopiesBusy, IndexUnavailable

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error (see the server's log)"
RETRY_AFTER_S = 10  # an index folder put back is served again at the next read


class BadInput(HTTPException):
    """A request the API refuses, said in one line that names the parameter.

    Args:
        message: str. What was wrong and what is taken instead.
        status: int. The HTTP status; defaults to 400.
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(status, message)


async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    """An HTTP error (ours or Starlette's: an unknown route, a wrong method) as JSON."""
    message = err.detail if isinstance(err.detail, str) else "request refused"
    if err.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.url.path[:200]}"
    return JSONResponse({"error": message}, err.status_code, headers=err.headers)


async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    """A request FastAPI's checks refused: 422, with the first few problems, each after
    the name of its parameter (`top_k: Input should be…`)."""
    parts = []
    for e in err.errors()[:5]:
        if e.get("type") == "json_invalid":  # its loc is a character position, not a name
            at = e.get("loc", ("body", "?"))[-1]
            why = e.get("ctx", {}).get("error", "invalid")
            parts.append(f"body: not valid JSON ({why} at character {at})")
            continue
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return JSONResponse({"error": "; ".join(parts)}, 422)


async def unavailable(request: Request, err: Exception) -> JSONResponse:
    """The index gone while serving (`IndexUnavailable`): 503, said in one line, logged in
    one line (no traceback: nothing of ours failed)."""
    log.warning("videoprism serve: %s %s: %s", request.method, request.url.path, err)
    return JSONResponse({"error": str(err)}, 503, headers={"Retry-After": str(RETRY_AFTER_S)})


async def copies_busy(request: Request, err: CopiesBusy) -> JSONResponse:
    """A copies run for other settings under way (`CopiesBusy`): 503, said in one line,
    with when to ask again."""
    return JSONResponse({"error": str(err)}, 503,
                        headers={"Retry-After": str(COPIES_RETRY_AFTER_S)})  # fmt: skip


async def disconnected(request: Request, err: ClientDisconnect) -> Response:
    """A client that went away mid-request (an upload cancelled): one line in the log, no
    traceback; the answer reaches nobody."""
    log.info("videoprism serve: %s %s: the client went away before its request was read",
             request.method, request.url.path[:200])  # fmt: skip
    return Response(status_code=400)


async def crashed(request: Request, err: Exception) -> JSONResponse:
    """A failure of our own: logged with its traceback, a bare 500 to the client."""
    log.exception("videoprism serve: %s %s failed", request.method, request.url.path)
    # Sent from outside the app's middleware: its headers are set here.
    return JSONResponse(
        {"error": INTERNAL_ERROR}, 500, headers={"X-Content-Type-Options": "nosniff"}
    )


def add_error_handlers(app: FastAPI) -> None:
    """Makes every error of `app` JSON, as above."""
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(IndexUnavailable, unavailable)
    app.add_exception_handler(CopiesBusy, copies_busy)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(Exception, crashed)
