"""The video files of an index, served with HTTP Range requests.

A file is served only as the index names it: the route takes a clip id, the path comes
from the table, never from the request. The path must still be what it was when it was
indexed, a regular file reached by no symbolic link (the index stores real paths), so
a file replaced by a link to somewhere else is refused rather than followed.
"""

import mimetypes
import os
import re
import stat
from typing import BinaryIO

from starlette.responses import Response, StreamingResponse

CHUNK = 256 * 1024  # bytes per read while streaming
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
               ".mov": "video/quicktime", ".mkv": "video/x-matroska",
               ".ogv": "video/ogg", ".avi": "video/x-msvideo"}  # fmt: skip
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class FileRefused(Exception):
    """The index names a file that cannot be served (gone, replaced by a link…)."""


class RangeNotSatisfiable(Exception):
    """A `Range` header malformed or outside the file (answered 416)."""


def open_indexed(path: str) -> tuple[BinaryIO, int]:
    """An open binary file for a path the index holds, and its size; `FileRefused` if
    the path is not a plain file at its real path (a link, a folder, gone)."""
    if not os.path.isabs(path) or os.path.realpath(path) != os.path.normpath(path):
        raise FileRefused("the indexed file is now a link or has moved: re-index it")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise FileRefused("the indexed file is gone or unreadable: re-index it") from err
    file = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        file.close()
        raise FileRefused("the indexed path is not a regular file")
    return file, info.st_size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`Range: bytes=a-b` → (first, last) inclusive; None for the whole file (no header,
    or several ranges, which a server may answer whole); `RangeNotSatisfiable` for a
    malformed header or a range outside the file."""
    if header is None:
        return None
    header = header.strip()
    if "," in header:
        return None
    match = _RANGE.fullmatch(header)
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable(header)
    first, last = match.groups()
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size - 1
    first = int(first)
    last = size - 1 if last == "" else min(int(last), size - 1)
    if first >= size or last < first:
        raise RangeNotSatisfiable(header)
    return first, last


def file_response(path: str, range_header: str | None, head: bool = False) -> Response:
    """200 with the whole file, 206 with one range of it, 416 for a range outside it;
    `head`: the same status and headers without the bytes (an HTTP HEAD)."""
    file, size = open_indexed(path)
    kind = VIDEO_TYPES.get(os.path.splitext(path)[1].lower()) or (
        mimetypes.guess_type(path)[0] or "application/octet-stream")  # fmt: skip
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    try:
        chosen = byte_range(range_header, size)
    except RangeNotSatisfiable:
        file.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = chosen if chosen else (0, size - 1)
    headers["Content-Length"] = str(max(0, last - first + 1))
    if chosen:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if head:  # players ask for the size and range support first; the file is not read
        file.close()
        return Response(status_code=206 if chosen else 200, media_type=kind, headers=headers)

    def chunks():
        with file:
            file.seek(first)
            left = last - first + 1
            while left > 0:
                data = file.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data

    return StreamingResponse(chunks(), status_code=206 if chosen else 200, media_type=kind,
                             headers=headers)  # fmt: skip
