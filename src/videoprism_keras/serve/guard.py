"""What every request passes before any route sees it (an ASGI middleware): the Host it
names, the Origin of a state-changing request, and the size of its body.

- Host: a web page can rebind its own name to 127.0.0.1 and then read this server as
  if it were its origin; the browser still sends the page's name as `Host`, so only
  the names this server is reached by are answered (400 otherwise).
- Origin: a browser says where a POST comes from; one from another origin is refused
  (403), so a page elsewhere cannot act with the cookie the search page set.
- Body: a declared length over the route's limit is refused before a byte is read
  (413); a body without one is counted as it streams and refused when it passes it.
"""

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BadInput
from .limits import LOOPBACK_NAMES, MAX_BODY_BYTES

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST = "*"  # in `allowed_hosts`: every name (a server bound to all addresses)


def host_name(host: str) -> str:
    """A Host header's name without its port, lowercased (`[::1]:8000` → `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_names(names: Iterable[str] | None) -> frozenset[str]:
    """The loopback names and `names` (bare IPv6 addresses put in brackets, as a Host
    header writes them). An address meaning all of them (0.0.0.0, ::) stands for any
    name, unless other names are given: then those are the ones."""
    found = set()
    for name in names or ():
        name = name.strip().lower().rstrip(".")
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"
        found.add(ANY_HOST if name in ("0.0.0.0", "[::]") else host_name(name))
    if found - {ANY_HOST} - LOOPBACK_NAMES:
        found.discard(ANY_HOST)
    return frozenset(found | LOOPBACK_NAMES)


class TooLarge(BadInput):
    """A request body over its route's limit: 413."""

    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than {limit} bytes", 413)


class RequestGuard:
    """The checks above, around `app`.

    Args:
        app: the ASGI app.
        allowed_hosts: the names (with any port) the server answers to besides the
            loopback ones; `*` among them: any name.
        body_limits: {path: bytes}. Routes that take more than `MAX_BODY_BYTES`.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] | None = None,
                 body_limits: dict[str, int] | None = None) -> None:  # fmt: skip
        self.app = app
        self.hosts = allowed_names(allowed_hosts)
        self.body_limits = dict(body_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if ANY_HOST not in self.hosts and host_name(host).rstrip(".") not in self.hosts:
            shown = host[:100] or "(none)"
            await _refuse(send, 400, f"Host {shown} is not a name this server answers to "
                          "(videoprism serve --allowed-host NAME adds one)")  # fmt: skip
            return
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None:
            if not self.own_origin(origin, host):
                await _refuse(send, 403, f"Origin {origin[:100]}: a request that changes "
                              "something is taken from this server's own page only")  # fmt: skip
                return
        limit = self.body_limits.get(scope["path"], MAX_BODY_BYTES)
        declared = headers.get("content-length")
        # Digits bounded before `int`: Python refuses to convert thousands of them.
        if declared is not None and (not declared.isdigit() or len(declared) > 18
                                     or int(declared) > limit):  # fmt: skip
            await _refuse(send, 413, TooLarge(limit).detail)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # no Content-Length, or a false one
                    raise TooLarge(limit)
            return message

        await self.app(scope, counted, send)

    def own_origin(self, origin: str, host: str) -> bool:
        """Whether a browser's `Origin` is this server's page: its host and port are the
        request's `Host` (the scheme is not compared: behind a TLS proxy the page is
        https and this server sees http), or its name is one given with
        `--allowed-host` (a proxy may rewrite `Host`). A loopback name alone is not
        enough: another local server's page (localhost:3000) is another origin."""
        scheme, sep, netloc = origin.strip().lower().partition("://")
        if not sep or scheme not in ("http", "https"):
            return False  # "null": a sandboxed or opaque origin
        if netloc == host.strip().lower():
            return True
        return host_name(netloc) in self.hosts - LOOPBACK_NAMES - {ANY_HOST}


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
