"""Apps that `serve.replicas` workers build in the replica tests (a spawned worker imports
them by name, so they live in a module of their own): a tiny one that says which worker and
process answered, and one that cannot be built."""

import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def tiny_app(number: int) -> Starlette:
    async def who(request):
        return JSONResponse({"worker": number, "pid": os.getpid()})

    return Starlette(routes=[Route("/who", who)])


def broken_app(number: int) -> Starlette:
    raise ValueError(f"no model for worker {number}\nsecond line not shown")
