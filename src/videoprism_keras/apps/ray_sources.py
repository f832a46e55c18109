"""The listing stage of the Ray pipeline (`ray_pipeline.py`), on the driver: sources →
the video files to embed, each with its identity.

Sources are files, folders (walked for videos), globs, and .parquet/.csv lists with a
column of paths (relative to the list) or URIs that pyarrow's filesystems open (s3://,
gs://, hdfs://, file://). An object is known by its URI, size and modification time, as a
file by its real path, size and modification time (`identity.py`).
"""

import glob
import os
from collections.abc import Sequence

from .embedding import find_videos
from .identity import VideoFile, video_files

Sources = str | os.PathLike | Sequence[str | os.PathLike]  # files, folders, globs, lists

LIST_SUFFIXES = (".parquet", ".csv")


def list_sources(sources: Sources, column: str = "path") -> list[str]:
    """Files, folders, globs and list files → paths and URIs, in order.

    Args:
        sources: path or sequence of paths. Files, folders, globs, and .parquet/.csv
            lists (relative paths in a list are relative to the list file).
        column: str. The lists' column of paths or URIs. Defaults to "path".
    """
    return [entry for entry, _ in _expand(sources, column)]


def local_sources(sources: Sources, column: str = "path") -> list[str]:
    """The local paths of `sources` named directly or matched by a glob, not read from a
    list: those that must exist (a typo), where an entry of a list that is missing or
    cannot be opened is one failure of the run (`source_files`, `listed_videos`)."""
    return [entry for entry, listed in _expand(sources, column)
            if not listed and "://" not in entry]  # fmt: skip


def _expand(sources: Sources, column: str) -> list[tuple[str, bool]]:
    """`list_sources`, each entry with whether it was read from a list file."""
    out = []
    for source in [sources] if isinstance(sources, str | os.PathLike) else sources:
        text = os.fspath(source)
        if text.lower().endswith(LIST_SUFFIXES) and ("://" in text or os.path.isfile(text)):
            out += [(entry, True) for entry in _listed(text, column)]
        elif glob.has_magic(text) and not os.path.lexists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            out += [(match, False) for match in matches]
        else:
            out.append((text, False))
    return out


def _listed(path: str, column: str) -> list[str]:
    import pyarrow as pa

    try:
        if path.lower().endswith(".csv"):
            from pyarrow import csv

            table = csv.read_csv(path, convert_options=csv.ConvertOptions(
                include_columns=[column], column_types={column: pa.string()}))  # fmt: skip
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[column])
    except (KeyError, OSError, pa.ArrowException) as err:
        raise ValueError(f"{path}: cannot read its {column!r} column of video paths "
                         f"({str(err).splitlines()[0]})") from err  # fmt: skip
    folder = os.path.dirname(path) if "://" not in path else ""
    names = [n for n in table[column].to_pylist() if n]
    return [n if "://" in n or os.path.isabs(n) else os.path.join(folder, n) for n in names]


def _identify_uri(uri: str) -> VideoFile:
    """An object's identity: its URI, size and modification time (as a file's)."""
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(inner)
    if info.type != fs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such object")
    return VideoFile(uri, int(info.size), int(info.mtime_ns or 0))


def source_files(sources: Sources, column: str = "path") -> tuple[list[VideoFile], list]:
    """Sources (see `list_sources`) → (the distinct video files and objects, those named
    directly first, each with its identity; (path, reason) pairs of the entries that could not be
    identified). Sources named directly raise errors as `video_files` does; an entry of
    a list that is missing, not a video, or a URI no filesystem of pyarrow opens (http://)
    is one failure, and the rest goes on."""
    expanded = _expand(sources, column)
    direct = [e for e, listed in expanded if not listed and "://" not in e]
    found, failures = video_files(direct) if direct else ([], [])
    files = {file.path: file for file in found}
    for entry, listed in expanded:
        try:
            if "://" in entry:
                identified = [_identify_uri(entry)]
            elif listed:
                identified, bad = video_files([entry])
                failures += bad
            else:
                continue
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            failures.append((entry, str(err).splitlines()[0] if str(err) else repr(err)))
            continue
        for file in identified:
            files.setdefault(file.path, file)
    return list(files.values()), failures


def listed_videos(sources: Sources, column: str = "path") -> tuple[list[str], list]:
    """Sources (see `list_sources`) → (the inputs to embed, as `find_videos` finds them,
    URIs as they are; (path, reason) of the entries of lists that are missing). Sources
    named directly raise errors as `find_videos` does."""
    videos, failures = [], []
    for entry, listed in _expand(sources, column):
        if "://" in entry:
            videos.append(entry)
        elif listed and not os.path.lexists(entry):
            failures.append((entry, "no such file or directory"))
        else:
            videos += find_videos([entry])
    return videos, failures
