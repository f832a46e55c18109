"""The search page: plain HTML, CSS and JS from `static/` (no build step, works offline),
served with headers that keep it to this origin."""

from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

STATIC = resources.files("videoprism_keras.serve") / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' "
    "blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}  # fmt: skip

router = APIRouter(include_in_schema=False)


@cache
def _page() -> bytes:
    return (STATIC / "index.html").read_bytes()


@router.get("/")
async def index_page() -> Response:
    return Response(_page(), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def static_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: the page's headers on every file under /static/ too."""
    response = await call_next(request)
    if request.url.path.startswith("/static/"):
        response.headers.update(PAGE_HEADERS)
    return response
