"""Running the app: the listening socket (bound before the model loads, so that a busy
port or a bad host fails at once) and uvicorn on it."""

import errno
import ipaddress
import logging
import socket

from starlette.types import ASGIApp

from ..constants import (
    SERVE_BACKLOG,
    SERVE_GRACEFUL_SECONDS,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_TOKEN_ENV,
)

log = logging.getLogger(__name__)


class ServeError(Exception):
    """A setting the server cannot run with (host, port, token), said in one line."""


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Serving the index beyond this machine needs a token: anyone who can reach the
    port could otherwise read every indexed video. A token with whitespace at an end
    is refused too: what a client sends is compared byte for byte, and such a token is
    almost always a copying slip that no client would send."""
    if token is not None and token != token.strip():
        raise ServeError(f"--token (or ${SERVE_TOKEN_ENV}): remove the whitespace at its start "
                         "or end (tokens are compared byte for byte)")  # fmt: skip
    if token is not None and len(token) < 8:
        raise ServeError("--token: use at least 8 characters (a guessable token protects "
                         "nothing)")  # fmt: skip
    if not is_loopback(host) and token is None:
        raise ServeError(f"--host {host} serves the index to other machines: give a --token "
                         "(or bind 127.0.0.1 and put your own proxy in front)")  # fmt: skip


def bind(host: str = SERVE_HOST, port: int = SERVE_PORT) -> socket.socket:
    """A listening TCP socket; `ServeError` for a host that is not this machine's or a
    port in use. Port 0 takes a free one."""
    if not 0 <= port <= 65535:
        raise ServeError(f"--port {port}: expected 0 to 65535")
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
        family, kind, proto, _, address = found[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ServeError(f"--host {host}: not an address or a name this machine can resolve "
                         f"({err})") from err  # fmt: skip
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(SERVE_BACKLOG)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ServeError(f"--port {port} is in use on {host}: stop what listens there or "
                             "choose another --port (0: any free one)") from err  # fmt: skip
        if err.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"--host {host} is not an address of this machine") from err
        if err.errno == errno.EACCES:
            raise ServeError(f"--port {port}: permission denied (ports below 1024 need "
                             "privileges): choose a port above 1024") from err  # fmt: skip
        raise ServeError(f"--host {host} --port {port}: cannot listen ({err})") from err
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket) -> str:
    """The http:// address of a listening socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(app: ASGIApp, sock: socket.socket, log_level: str = "info") -> None:
    """Serves `app` on `sock` until interrupted (Ctrl-C, SIGTERM); `log_level` is
    uvicorn's (defaults to "info")."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, server_header=False,
                            timeout_graceful_shutdown=SERVE_GRACEFUL_SECONDS)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
