"""Which video files a set of sources names, each known by a stable identity.

A file is known by its resolved real path and its (size, modification time in ns):
the real path makes `videos/a.mp4`, `./videos/a.mp4` and a symlink to it one file; size
and mtime change when a file is replaced (copied over, re-encoded, renamed onto), so a
replaced file gets a new identity and is embedded again. A content hash would also catch
a same-size rewrite that keeps its mtime (`cp -p` of another video of the same size,
which we accept missing), but it reads every byte of every video on every run, before
knowing whether there is anything to do: hours on a large library that is already indexed.
"""

import errno
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..video.images import is_image_source
from ..video.times import TIME_DIGITS, seconds_or_none
from .embedding import VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoFile:
    """A video file as an index knows it.

    Attributes:
        path: str. The resolved real path.
        size: int. Bytes (-1 for a path that names no file).
        mtime_ns: int. The modification time in nanoseconds.
    """

    path: str
    size: int
    mtime_ns: int

    @property
    def file_id(self) -> str:
        """The identity as a short string: 128 bits of SHA-256 of (path, size, mtime)."""
        text = f"{self.path}\n{self.size}\n{self.mtime_ns}"
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def clip_id(file_id: str, start_s: float | None, end_s: float | None) -> str:
    """One clip of one file version: `<file_id>@<start_s>-<end_s>`, times to the
    microsecond (as `item_key` rounds them), `whole` for a whole video (a time None or
    NaN)."""
    start_s, end_s = seconds_or_none(start_s), seconds_or_none(end_s)
    if start_s is None or end_s is None:
        return f"{file_id}@whole"
    return f"{file_id}@{start_s:.{TIME_DIGITS}f}-{end_s:.{TIME_DIGITS}f}"


def identify(path: str | os.PathLike) -> VideoFile:
    """A file → its `VideoFile`. Raises `OSError` for a dangling or looping symlink or a
    missing file, `IsADirectoryError` for a folder, whatever its name."""
    text = os.fspath(path)
    try:
        real = os.path.realpath(text, strict=True)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link loop", text) from None
        if os.path.islink(text):
            raise OSError(errno.ENOENT, "a dangling symbolic link", text) from None
        raise OSError(errno.ENOENT, "no such file", text) from None
    stat = os.stat(real)
    if os.path.isdir(real):
        raise IsADirectoryError(errno.EISDIR, "a folder named like a video, not a video", text)
    return VideoFile(real, stat.st_size, stat.st_mtime_ns)


def _walk(folder: Path):
    """Every entry under `folder` whose name has a video suffix, sorted, following
    symlinked folders once (a folder reached twice, by a loop or two links, is walked once)."""
    seen = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(names + dirs):
            if Path(name).suffix.lower() in VIDEO_SUFFIXES:
                yield Path(root) / name


def video_files(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
) -> tuple[list[VideoFile], list[tuple[str, str]]]:
    """Video files and folders → (the distinct files, in order, first naming first;
    (path, reason) of the entries that are not video files).

    Folders are walked recursively for names with a video suffix; a file named
    directly is taken whatever its suffix. Dangling or looping symlinks and folders
    named like videos are failures, not errors: the rest goes on. A source that does
    not exist at all raises `FileNotFoundError` (a typo: nothing to index), a folder
    without any video `ValueError` (unless it is named like a video: a failure).
    """
    sources = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    files: dict[str, VideoFile] = {}
    failures = []
    for source in map(Path, sources):
        if source.is_dir():
            entries = list(_walk(source))
            if not entries and source.suffix.lower() in VIDEO_SUFFIXES:
                # A folder named like a video (often one left by a failed copy) is one
                # input that is not a video, as it is inside a folder walked: skipped.
                failures.append((str(source), "a folder named like a video, not a video"))
                continue
            if not entries and is_image_source(source):
                raise ValueError(f"{source} is a folder of image frames: an index takes video "
                                 "files (embed and classify read image folders)")  # fmt: skip
            if not entries:
                raise ValueError(f"{source} holds no video files")
        elif not os.path.lexists(source):
            raise FileNotFoundError(f"{source}: no such file or directory")
        else:
            entries = [source]
        for entry in entries:
            try:
                found = identify(entry)
            except OSError as err:
                failures.append((str(entry), err.strerror or str(err)))
                continue
            files.setdefault(found.path, found)
    return list(files.values()), failures
