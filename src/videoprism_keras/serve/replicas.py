"""Replicas: N worker processes answering on one listening socket (`videoprism serve
--workers N`).

The parent binds the socket (before any model loads, so that a busy port fails at once),
then starts the workers with multiprocessing's spawn (a fresh interpreter each: a forked
copy of a process that has loaded JAX or LanceDB may hang) and hands each the socket.
Each worker builds its own app (its own model, its own held snapshot of the index) and
runs uvicorn on the shared socket and on one of its own, bound to the same port with
SO_REUSEPORT once it is ready. A connection to the shared socket goes to whichever worker
accepts first, and a worker accepts every waiting one when it wakes: alone, a burst of
kept-alive connections (a client's or a proxy's pool) all lands on one worker. The kernel
spreads new connections over the sockets of the port by their addresses, so with a socket
of its own each worker gets its share; the shared one holds connections while the workers
start. Each worker's reads move to the index's latest version as a single server's do, so
a commit made after the start is served by every worker.

The parent does nothing but watch: SIGINT or SIGTERM stops every worker (SIGTERM, then
SIGKILL after a grace period). Until the server is announced, a worker that dies before it
is ready stops the server with one line: a fault that survives a fresh start (a model or an
index that cannot be read) is not passing, and serving on with fewer workers would hide
it. Once announced, a worker that dies (serving, or loading again) is started again, the
others answering meanwhile, after a delay that doubles with its recent deaths; too many in
a window stop the server with one line, as does a worker that is not ready in time
(`constants.py`: SERVE_RESTART_*, SERVE_START_SECONDS).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..constants import (
    SERVE_BACKLOG,
    SERVE_GRACEFUL_SECONDS,
    SERVE_REPLICA_POLL_SECONDS,
    SERVE_RESTART_DELAY_SECONDS,
    SERVE_RESTART_MAX_DELAY_SECONDS,
    SERVE_RESTART_WINDOW_SECONDS,
    SERVE_RESTARTS,
    SERVE_START_SECONDS,
    SERVE_STOP_SECONDS,
    SERVE_WORKER_HEADER,
)
from .server import ServeError, bind

# Linux spreads the connections of a port over its SO_REUSEPORT sockets; other systems let
# such sockets share a port but give one of them every connection.
SPREAD = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_shared(host: str, port: int) -> socket.socket:
    """A listening socket, as `server.bind`'s (the same checks and errors), that the
    workers' own sockets may join on its port (SO_REUSEPORT, on Linux)."""
    probe = bind(host, port)  # a port someone listens on fails here, whoever it is
    if not SPREAD:
        return probe
    address = probe.getsockname()
    family = probe.family
    probe.close()  # then bound again at once, now open to the workers' sockets
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(SERVE_BACKLOG)
    except OSError as err:
        sock.close()
        raise ServeError(f"--host {host} --port {port}: cannot listen ({err})") from err
    sock.set_inheritable(True)
    return sock


def _own_socket(shared: socket.socket) -> socket.socket | None:
    """A listening socket of this worker's own on the shared socket's port; None where
    the shared one was not opened to it (no SO_REUSEPORT)."""
    if not SPREAD:
        return None
    if not shared.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        return None
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(shared.getsockname())
    own.listen(SERVE_BACKLOG)
    return own


class ReplicaError(ServeError):
    """A worker could not start, or kept dying: the server stopped."""


class WorkerHeader:
    """ASGI middleware: every HTTP answer says which worker gave it (`SERVE_WORKER_HEADER`),
    so that a client (or a test) can tell the replicas apart."""

    def __init__(self, app: ASGIApp, number: int) -> None:
        self.app, self.value = app, str(number).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((SERVE_WORKER_HEADER.lower().encode(), self.value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _watch(parent: int) -> None:
    """Stops this worker as a SIGTERM does once its parent is gone: a parent killed
    outright (SIGKILL, the OOM killer) leaves no one else to stop it, and it would go on
    answering on the port."""
    while os.getppid() == parent:
        time.sleep(SERVE_REPLICA_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker(number: int, build: Callable[[int], ASGIApp], sock: socket.socket,
            ready: multiprocessing.connection.Connection, log_level: str,
            parent: int) -> None:  # fmt: skip
    """A worker process: builds its app, says it is ready once uvicorn has started, serves
    until SIGTERM (or SIGINT from a terminal: uvicorn stops gracefully on either), or until
    the `parent` process is gone."""
    import threading

    import uvicorn

    # Until uvicorn takes them over: the parent says when to stop (Ctrl-C reaches the
    # whole process group; the parent's SIGTERM follows), and a SIGTERM while loading ends
    # the worker at once, without a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit)
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    try:
        app = WorkerHeader(build(number), number)
        own = _own_socket(sock)  # once it can answer: the kernel sends it connections
    except Exception as err:  # one line, as the CLI says errors; the parent says the rest
        message = getattr(err, "cli_message", None) or str(err) or type(err).__name__
        print(f"videoprism: worker {number}: error: {message.splitlines()[0]}", file=sys.stderr,
              flush=True)  # fmt: skip
        sys.exit(1)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                ready.send(os.getpid())

    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False,
                            timeout_graceful_shutdown=SERVE_GRACEFUL_SECONDS)  # fmt: skip
    Server(config).run(sockets=[sock] if own is None else [sock, own])
    # Stopped (a Ctrl-C of its own): the parent's SIGTERM may come while the process
    # exits, and would raise in its exit handlers (JAX's), with a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _exit(*_) -> None:
    """A SIGTERM: ends the worker, once (another during the exit is ignored).

    Inside uvicorn's event loop it does nothing more: the server is stopping already.
    uvicorn holds SIGTERM while it serves and, once stopped, gives back this handler and
    raises the signals it held (a Ctrl-C to the group, then the parent's SIGTERM) while its
    loop still runs; a `SystemExit` there would end the worker with a traceback."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # loading, or after the server: end now
        sys.exit(0)


@dataclass
class _Worker:
    number: int
    process: multiprocessing.process.BaseProcess
    ready: multiprocessing.connection.Connection
    started: float  # time.monotonic() at its start
    pid: int | None = None  # once ready


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def run_replicas(build: Callable[[int], ASGIApp], sock: socket.socket, workers: int,
                 log_level: str = "warning",
                 on_ready: Callable[[list[int]], None] | None = None) -> None:  # fmt: skip
    """Serves on `sock` with `workers` processes until SIGINT or SIGTERM.

    Args:
        build: a picklable callable (a module-level function, or a `functools.partial`
            of one) that a worker calls with its number (1 to `workers`) to make its app.
        sock: socket.socket. The listening socket (`server.bind`), shared by every worker.
        workers: int. How many worker processes (at least 1).
        log_level: str. uvicorn's log level in the workers; defaults to "warning".
        on_ready: callable or None. Called once with the workers' pids when every worker
            answers; defaults to None.

    Raises:
        ReplicaError: if a worker ends before it is ready while the server starts, dies
            too often once it serves, or is not ready in time (the others are stopped
            first).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1. Received: workers={workers}")
    context = multiprocessing.get_context("spawn")
    stopping = []
    previous = {s: signal.signal(s, lambda n, _: stopping.append(n))
                for s in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    running: dict[int, _Worker] = {}
    due: dict[int, float] = {}  # a dead worker's number → when it starts again
    deaths: dict[int, list[float]] = {}  # a worker's number → its deaths in the window

    def start(number: int) -> None:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker, name=f"videoprism-serve-{number}",
                                  args=(number, build, sock, send, log_level, os.getpid()),
                                  daemon=True)  # fmt: skip
        process.start()
        send.close()  # the child's end: kept open here, a dead child would never read as EOF
        running[number] = _Worker(number, process, receive, time.monotonic())

    try:
        for number in range(1, workers + 1):
            start(number)
        announced = False
        while not stopping:
            now = time.monotonic()
            for number in [n for n, at in due.items() if at <= now]:
                del due[number]
                start(number)
            _check_started(running.values(), now)
            waits = {w.ready: w for w in running.values() if w.pid is None}
            waits.update({w.process.sentinel: w for w in running.values()})
            timeout = min([SERVE_REPLICA_POLL_SECONDS, *(at - now for at in due.values())])
            for done in multiprocessing.connection.wait(list(waits), max(0.0, timeout)):
                if stopping:  # a Ctrl-C reaches the workers too: their ends are the stop's
                    break
                worker = waits[done]
                if running.get(worker.number) is not worker:  # its end, handled just above
                    continue
                if done is worker.ready:
                    try:
                        worker.pid = worker.ready.recv()
                    except EOFError:  # ended before it was ready: its sentinel says so next
                        worker.pid = None
                    continue
                if worker.process.is_alive():
                    continue
                worker.process.join()
                worker.ready.close()
                del running[worker.number]
                how = _describe(worker.process.exitcode)
                if worker.pid is None and not announced:
                    raise ReplicaError(f"--workers: worker {worker.number} ended ({how}) "
                                       "before it was ready: stopping the server (its own "
                                       "line, if it could say one, is above)")  # fmt: skip
                delay = _restart_delay(worker.number, deaths.setdefault(worker.number, []),
                                       how)  # fmt: skip
                due[worker.number] = time.monotonic() + delay
                which = "" if worker.pid is None else f" (pid {worker.pid})"
                when = " before it was ready" if worker.pid is None else ""
                print(f"videoprism: worker {worker.number}{which} ended ({how}){when}: starting "
                      f"it again in {delay:g} s", file=sys.stderr, flush=True)  # fmt: skip
            ready = len(running) == workers and all(w.pid is not None for w in running.values())
            if not announced and ready:
                announced = True
                if on_ready is not None:
                    on_ready([running[n].pid for n in sorted(running)])
    finally:
        _stop(list(running.values()))
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_started(workers, now: float) -> None:
    """Stops the server for a worker not ready `SERVE_START_SECONDS` after its start."""
    for worker in workers:
        if worker.pid is None and now - worker.started > SERVE_START_SECONDS:
            raise ReplicaError(f"--workers: worker {worker.number} was not ready "
                               f"{SERVE_START_SECONDS:g} s after its start: stopping the "
                               "server")  # fmt: skip


def _restart_delay(number: int, deaths: list[float], how: str) -> float:
    """How long to wait before starting worker `number` again, given its `deaths` (times,
    updated here with this one); stops the server past `SERVE_RESTARTS` restarts within
    `SERVE_RESTART_WINDOW_SECONDS`."""
    now = time.monotonic()
    deaths[:] = [t for t in deaths if now - t < SERVE_RESTART_WINDOW_SECONDS] + [now]
    if len(deaths) > SERVE_RESTARTS:
        raise ReplicaError(f"--workers: worker {number} ended {len(deaths)} times within "
                           f"{SERVE_RESTART_WINDOW_SECONDS:g} s (the last: {how}): stopping "
                           "the server")  # fmt: skip
    return min(SERVE_RESTART_DELAY_SECONDS * 2 ** (len(deaths) - 1),
               SERVE_RESTART_MAX_DELAY_SECONDS)  # fmt: skip


def _stop(workers: list[_Worker]) -> None:
    """SIGTERM to every worker (uvicorn finishes the requests under way), then SIGKILL to
    any still running after `SERVE_STOP_SECONDS`."""
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    deadline = time.monotonic() + SERVE_STOP_SECONDS
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.ready.close()
