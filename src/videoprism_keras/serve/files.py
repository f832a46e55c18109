"""The video files of an index, served with HTTP Range requests.

A file is served only as the index names it: the route takes a clip id, the path comes
from the table, never from the request. The path must still be what it was when it was
indexed: a regular file reached by no symbolic link (the index stores real paths), with
the size and modification time the index recorded (the clip id hashes them, see
`apps/identity.py`). So a file replaced by a link, a folder, a FIFO, a hard link to
another file or another video is refused rather than served.

The open never waits: `O_NONBLOCK` makes a FIFO open at once (without it the open waits
for a writer, and the server with it), and the route runs it in a worker thread anyway.
"""

import mimetypes
import os
import re
import stat
from typing import BinaryIO

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..apps.identity import VideoFile

CHUNK = 256 * 1024  # bytes per read while streaming
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm",
               ".mov": "video/quicktime", ".mkv": "video/x-matroska",
               ".ogv": "video/ogg", ".avi": "video/x-msvideo"}  # fmt: skip
# Longer numbers than any file's size are read as "past the end" without converting them
# (Python refuses to convert thousands of digits: a 500, once).
RANGE_DIGITS = 20
_PAST_THE_END = 10**RANGE_DIGITS
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)  # range units are case-insensitive
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))  # fmt: skip


class FileRefused(Exception):
    """The index names a file that cannot be served (gone, replaced by a link…)."""


class RangeNotSatisfiable(Exception):
    """A `Range` outside the file, or one whose end is before its start (answered 416)."""


def range_spec(header: str | None) -> tuple[int | None, int | None] | None:
    """`Range: bytes=a-b` → (a, b), either None where not given; None for the whole file.

    Read before the file is opened, and never fails. RFC 9110 lets a server ignore a
    Range it does not use, so no header, another unit (`items=0-5`), several ranges, and
    anything malformed (`bytes = 0-5`, `bytes=abc`, an empty value) are None: the whole
    file.
    """
    match = _RANGE.fullmatch(header.strip()) if header is not None else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = (None if g == "" else _number(g) for g in match.groups())
    return first, last


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"  # leading zeros are allowed, and say nothing
    return int(digits) if len(digits) <= RANGE_DIGITS else _PAST_THE_END


def byte_range(spec: tuple[int | None, int | None] | None, size: int) -> tuple[int, int] | None:
    """A `range_spec` → (first, last) bytes of a file of `size`, inclusive; None for the
    whole file; `RangeNotSatisfiable` for a range that starts past the end, ends before
    it starts (`bytes=9-3`) or asks for no bytes (`bytes=-0`)."""
    if spec is None:
        return None
    first, last = spec
    if first is None:  # the last N bytes
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(spec)
        return max(0, size - last), size - 1
    if first >= size or (last is not None and last < first):
        raise RangeNotSatisfiable(spec)
    return first, size - 1 if last is None else min(last, size - 1)


def open_indexed(path: str, file_id: str | None = None) -> tuple[BinaryIO, int]:
    """An open binary file for a path the index holds, and its size.

    Args:
        path: str. The path as the index stores it (a real path).
        file_id: str or None. The file's id in the index (a clip id's part before `@`):
            the file must still have the size and modification time it hashes; defaults
            to None (not checked).

    Raises `FileRefused` if the path is not a plain file at its real path (a link, a
    folder, a FIFO, gone) or not the file that was indexed; nothing is left open then.
    """
    if not os.path.isabs(path) or os.path.realpath(path) != os.path.normpath(path):
        raise FileRefused("the indexed file is now a link or has moved: re-index it")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        raise FileRefused("the indexed file is gone or unreadable: re-index it") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("the indexed path is not a regular file")
        found = VideoFile(path, info.st_size, info.st_mtime_ns)
        if file_id is not None and found.file_id != file_id:  # e.g. a hard link to another file
            raise FileRefused("the indexed file has changed since it was indexed (another "
                              "size or modification time): re-index it")  # fmt: skip
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def file_response(path: str, range_header: str | None, head: bool = False,
                  file_id: str | None = None) -> Response:  # fmt: skip
    """200 with the whole file, 206 with one range of it, 416 for a range outside it;
    `head`: the same status and headers without the bytes (an HTTP HEAD); `file_id`:
    see `open_indexed`. Blocking: run it in a worker thread."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    kind = VIDEO_TYPES.get(os.path.splitext(path)[1].lower()) or (
        mimetypes.guess_type(path)[0] or "application/octet-stream")  # fmt: skip
    spec = range_spec(range_header)  # first: a bad header opens nothing
    file, size = open_indexed(path, file_id)
    try:
        chosen = byte_range(spec, size)
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
        file.seek(first)
        left = last - first + 1
        while left > 0:
            data = file.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data

    return FileStream(file, chunks(), status_code=206 if chosen else 200, media_type=kind,
                      headers=headers)  # fmt: skip


class FileStream(StreamingResponse):
    """A `StreamingResponse` of an open file that closes it however the response ends: a
    client that goes away midway cancels the stream and leaves its iterator suspended,
    open until the garbage collector finds it (a descriptor per cut-off download)."""

    def __init__(self, file: BinaryIO, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.file = file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # a read in progress has ended: reads in threads are not abandoned
            self.file.close()
