"""Apps that `serve.replicas` workers build in the replica tests (a spawned worker imports
them by name, so they live in a module of their own, importing only Starlette): a tiny one
that says which worker and process answered, one that cannot be built, one that can be
built once only (a worker that dies again at every restart), and one that never finishes
loading."""

import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def tiny_app(number: int) -> Starlette:
    async def who(request):
        return JSONResponse({"worker": number, "pid": os.getpid()})

    return Starlette(routes=[Route("/who", who)])


def broken_app(number: int) -> Starlette:
    raise ValueError(f"no model for worker {number}\nsecond line not shown")


def once_app(folder: str, number: int) -> Starlette:
    """`tiny_app` the first time a worker builds it (a file in `folder` remembers); an
    error every time after."""
    built = Path(folder) / f"worker{number}"
    if built.exists():
        raise ValueError(f"worker {number} cannot start again")
    built.touch()
    return tiny_app(number)


def hung_app(number: int) -> Starlette:
    time.sleep(3600)  # a load that never ends (a SIGTERM ends the worker)
    raise AssertionError("unreachable")
