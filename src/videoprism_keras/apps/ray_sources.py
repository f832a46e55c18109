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
    out = []
    for source in [sources] if isinstance(sources, str | os.PathLike) else sources:
        text = os.fspath(source)
        if text.lower().endswith(LIST_SUFFIXES) and ("://" in text or os.path.isfile(text)):
            out += _listed(text, column)
        elif glob.has_magic(text) and not os.path.lexists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            out += matches
        else:
            out.append(text)
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
    """Sources (see `list_sources`) → (the distinct video files and objects, each with its
    identity; (path, reason) pairs of the entries that could not be identified)."""
    listed = list_sources(sources, column)
    local = [s for s in listed if "://" not in s]
    files, failures = video_files(local) if local else ([], [])
    known = {f.path for f in files}
    for uri in (s for s in listed if "://" in s):
        try:
            found = _identify_uri(uri)
        except OSError as err:
            failures.append((uri, str(err)))
            continue
        if found.path not in known:
            known.add(found.path)
            files.append(found)
    return files, failures
