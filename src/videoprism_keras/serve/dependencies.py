"""What a route gets through FastAPI's `Depends`: the service and the app's settings
(kept on `app.state` by `create_app`), the bearer-token check, and the shapes of the
parameters several routes share."""

import base64
import binascii
import hmac
import warnings
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Response

from ..constants import MAX_WHERE_CHARS, WHERE_COLUMNS
from ..deprecation import message as deprecation_message
from .errors import BadInput
from .limits import CLIP_ID, DEFAULT_TOP_K, MAX_TOP_K, MAX_UPLOAD_BYTES
from .service import SearchService

TOKEN_COOKIE = "videoprism_token"  # the page's `static/app.js` sets it


@dataclass(frozen=True)
class Settings:
    """How one app was made (see `create_app`).

    Args:
        token: str or None. The bearer token every /api route but /api/health wants;
            None: no token.
        max_upload_bytes: int. The largest upload taken; defaults to `MAX_UPLOAD_BYTES`.
        warm_up: bool. Whether the text model's shapes are compiled at start; defaults
            to True.
    """

    token: str | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    warm_up: bool = True


def get_service(request: Request) -> SearchService:
    """The `SearchService` the app serves."""
    return request.app.state.service


def get_settings(request: Request) -> Settings:
    """The app's `Settings`."""
    return request.app.state.settings


def upload_folder(request: Request) -> str:
    """The folder uploads are written to while they are embedded (the app's own, made at
    start and removed at shutdown)."""
    return request.app.state.uploads["dir"]


def cookie_value(token: str) -> str:
    """The page's cookie for `token`: its UTF-8 bytes in unpadded base64url, which a
    cookie carries unchanged whatever the token holds (`/`, `+`, `=`, spaces, any
    script); `static/app.js` writes it the same way."""
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def _cookie_token(value: str) -> bytes | None:
    """The token's bytes from the page's cookie; None when it is not base64url."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error):
        return None


def require_token(request: Request) -> None:
    """Refuses (401) a request without the app's token, given as `Authorization: Bearer
    <token>` or in the page's cookie (see `cookie_value`); passes every request when the
    app has no token. Compared as bytes: the header's as sent (HTTP gives them as
    Latin-1 text), the cookie's decoded, the token's as UTF-8."""
    token = get_settings(request).token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer":
        sent = value.strip().encode("latin-1", "replace")
    else:
        sent = _cookie_token(request.cookies.get(TOKEN_COOKIE, "")) or b""
    if not hmac.compare_digest(sent, token.encode()):
        raise HTTPException(401, "a bearer token is needed: Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


K_DEPRECATED = deprecation_message("videoprism serve", "k", "top_k")


def top_k(response: Response,
          top_k: Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description=(
              f"how many hits (default {DEFAULT_TOP_K})"))] = None,
          k: Annotated[int | None, Query(ge=1, le=MAX_TOP_K, deprecated=True, description=(
              "the old name of top_k, taken for one release (the answer then carries a "
              "`Warning` header); not together with top_k"))] = None) -> int:  # fmt: skip
    """A search's `top_k`, or its old name `k` (with a `Warning` header and a
    `DeprecationWarning` in the server); both at once are a 400 that names both."""
    if k is None:
        return DEFAULT_TOP_K if top_k is None else top_k
    if top_k is not None:
        raise BadInput(f"top_k and k: `k` is the deprecated name of `top_k`; give only top_k. "
                       f"Received: top_k={top_k}, k={k}")  # fmt: skip
    warnings.warn(K_DEPRECATED, DeprecationWarning, stacklevel=2)
    response.headers["Warning"] = f'299 - "{K_DEPRECATED}"'
    return k


Service = Annotated[SearchService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
UploadFolder = Annotated[str, Depends(upload_folder)]

# Parameters that several routes take, with their limits and their OpenAPI descriptions.
TopK = Annotated[int, Depends(top_k)]
Where = Annotated[str | None, Query(description="SQL predicate over " + ", ".join(WHERE_COLUMNS),
                                    max_length=MAX_WHERE_CHARS)]  # fmt: skip
Under = Annotated[str | None, Query(description="only videos in this folder (absolute)")]
PerVideo = Annotated[bool, Query(description="the best clip of each video")]
ClipId = Annotated[str, Path(pattern=CLIP_ID, description="a hit's id")]
