"""What every response of the app goes through: HEAD answered wherever GET is, and
`X-Content-Type-Options: nosniff` on every response (so that a browser never reads a
JSON error or a video as a page).

Both are plain ASGI middleware: FastAPI routes answer only the methods they declare, and
declaring HEAD beside each GET would put a second operation per route in the OpenAPI
schema.
"""

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")


class HeadAndNosniff:
    """HEAD on a GET-only route runs the GET and sends its status and headers without the
    body; every response gets `nosniff`.

    Args:
        app: ASGIApp. The app inside.
        router: Router. The routes, to tell a GET-only route from one that answers HEAD
            itself (the video's, which then reads no file).
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app, self.router = app, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD" and not self._answers_head(scope)

        async def send_on(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                    headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the GET's body, not sent
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"} if head else scope, receive, send_on)

    def _answers_head(self, scope: Scope) -> bool:
        """Whether a route (or a mount: static files answer HEAD) takes this HEAD as is;
        False also where no route matches (a GET there is a 404 too)."""
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return True
        return False
