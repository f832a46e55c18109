"""A query sent as a request's body (a video or an image): its type and size checked,
streamed to a temporary file of the server's own, its pixels checked, embedded in the
model's queue, and deleted. The search and moments routes take uploads alike."""

import asyncio
import contextlib
import logging
import os
import tempfile

import numpy as np
from fastapi import Request

from .checks import upload_pixels
from .dependencies import Settings
from .errors import BadInput
from .limits import UPLOAD_TYPES
from .service import SearchService

log = logging.getLogger(__name__)


def upload_body(max_bytes: int) -> dict:
    """The OpenAPI description of an upload's body: the file itself, of one of
    `UPLOAD_TYPES`, at most `max_bytes` bytes (`create_app` puts its own limit in)."""
    return {"required": True,
            "description": f"the video or image itself (at most {max_bytes} bytes)",
            "content": {t: {"schema": {"type": "string", "format": "binary"}}
                        for t in UPLOAD_TYPES}}  # fmt: skip


async def embed_upload(service: SearchService, settings: Settings, folder: str,
                       request: Request) -> tuple[np.ndarray, str]:  # fmt: skip
    """The embedding of the video or image in `request`'s body, and its Content-Type.

    Args:
        service: SearchService. Embeds it.
        settings: Settings. The app's (its upload limit).
        folder: str. The uploads' folder.
        request: Request. Its body is the file; its Content-Type says which kind.

    Raises:
        BadInput: 415 for a type not taken or a file not decodable, 413 for one too
            large (in bytes or pixels), 400 for an empty body.
    """
    limit = settings.max_upload_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in UPLOAD_TYPES:
        raise BadInput(f"Content-Type {kind or '(none)'} is not a video or image type "
                       "taken here: " + ", ".join(sorted(UPLOAD_TYPES)), 415)  # fmt: skip
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadInput(f"the upload is larger than {limit} bytes", 413)
    fd, path = tempfile.mkstemp(suffix=UPLOAD_TYPES[kind], dir=folder)
    try:
        received = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:  # no Content-Length, or a false one
                    raise BadInput(f"the upload is larger than {limit} bytes", 413)
                await asyncio.to_thread(out.write, chunk)  # the disk: off the loop
        if not received:
            raise BadInput("the request body is empty: send the video or image itself")
        await asyncio.to_thread(upload_pixels, path, kind)  # before the model's queue
        try:
            vector = await service.embed_file(path)
        except Exception as err:  # whatever the decoder says about a bad file
            log.info("upload not decodable: %s", err)
            raise BadInput(f"the upload is not a readable {kind.split('/')[0]} "
                           f"(declared {kind})", 415) from err  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
    return vector, kind
