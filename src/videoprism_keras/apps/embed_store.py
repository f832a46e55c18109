"""Where `EmbeddingWriter` keeps its parts and its output: a local folder, or an object
store (`s3://`, `gs://`, … through pyarrow's file systems).

Both give the writer the same guarantees: a part, the output and its sidecar are each
whole or absent, and an earlier output stays whole until a new one replaces it (locally a
temporary name and a rename; on an object store an upload under a temporary name, then
one copy to the real name, see `ObjectPlace._upload`). Parts live in `<output>.partial/`
either way.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..constants import (
    EMBED_STORE_ATTEMPTS,
    EMBED_STORE_CONNECT_S,
    EMBED_STORE_OPTIONS,
    EMBED_STORE_TEMPORARY,
)
from .embedding import Embeddings
from .object_store import is_uri, object_store_fault


class LocalPlace:
    """The output and its parts in a local folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.parts = self.path.with_name(self.path.name + ".partial")

    @property
    def suffix(self) -> str:
        return self.path.suffix

    def has_parts(self, manifest: str) -> bool:
        return self.parts.is_dir() and (self.parts / manifest).is_file()

    def read_text(self, name: str) -> str:
        return (self.parts / name).read_text()

    def has_output(self) -> bool:
        return self.path.is_file()

    def load_output(self) -> Embeddings:
        return Embeddings.load(self.path)

    def clear_parts(self) -> None:
        shutil.rmtree(self.parts, ignore_errors=True)

    def make_parts(self) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)

    def part_names(self) -> list[str]:
        return sorted(p.name for p in self.parts.glob("part-*.npz"))

    def open_part(self, name: str) -> Path:
        return self.parts / name

    def put(self, name: str, write: Callable[[IO[bytes]], None]) -> None:
        """A file of the parts folder, whole or absent: written aside, then renamed."""
        target = self.parts / name
        temporary = target.with_suffix(".tmp")
        with open(temporary, "wb") as f:
            write(f)
        os.replace(temporary, target)

    def put_sidecar(self, text: str) -> None:
        target = self.path.with_suffix(".json")
        temporary = target.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, target)

    @contextmanager
    def output(self) -> Iterator[IO[bytes] | Path]:
        """Where the output is written: a temporary file, renamed over it at the end."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        yield temporary
        os.replace(temporary, self.path)

    def __str__(self) -> str:
        return str(self.path)


class ObjectPlace:
    """The output and its parts on an object store: each part one object, the output one
    upload (see the module docstring)."""

    def __init__(self, uri: str, storage_options: dict | None = None):
        self.uri = uri.rstrip("/")
        self.fs, self.key = file_system(self.uri, storage_options)
        self.parts_key = self.key + ".partial"
        self.parts = self.uri + ".partial"

    @property
    def suffix(self) -> str:
        return Path(self.key).suffix

    @property
    def path(self) -> str:
        return self.uri

    def check(self) -> None:
        """The bucket answers and lets us in (reads only: nothing is written); raises
        OSError saying what is wrong."""
        from pyarrow import fs

        bucket = self.key.split("/", 1)[0]
        try:
            found = self.fs.get_file_info([bucket, self.key])
        except OSError as err:
            text = str(err)
            raise OSError(object_store_fault(text) or _first_line(text)) from err
        if found[0].type == fs.FileType.NotFound:
            raise OSError(f"the bucket {bucket} does not exist")
        if found[1].type == fs.FileType.Directory:
            raise OSError("it is a folder; expected a file name")

    def _infos(self) -> list:
        from pyarrow import fs

        return self.fs.get_file_info(fs.FileSelector(self.parts_key, allow_not_found=True))

    def has_parts(self, manifest: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(f"{self.parts_key}/{manifest}").type == fs.FileType.File

    def read_text(self, name: str) -> str:
        with self.fs.open_input_stream(f"{self.parts_key}/{name}") as f:
            return f.read().decode()

    def has_output(self) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.key).type == fs.FileType.File

    def load_output(self) -> Embeddings:
        """The finished output, read through a local copy (with an .npy's sidecar)."""
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / Path(self.key).name
            names = [(self.key, local)]
            sidecar = str(Path(self.key).with_suffix(".json"))
            if self.suffix == ".npy" and self.fs.get_file_info(sidecar).size is not None:
                names.append((sidecar, local.with_suffix(".json")))
            for key, target in names:
                with self.fs.open_input_stream(key) as f, open(target, "wb") as out:
                    shutil.copyfileobj(f, out)
            return Embeddings.load(local)

    def clear_parts(self) -> None:
        # pyarrow then marks the parent folder with an empty `folder/` object (none at a
        # bucket's top): a folder as the S3 console makes one, not a part.
        if self._infos():
            self.fs.delete_dir(self.parts_key)

    def make_parts(self) -> None:  # an object store has no folders to make
        pass

    def part_names(self) -> list[str]:
        names = (Path(info.path).name for info in self._infos())
        return sorted(n for n in names if n.startswith("part-") and n.endswith(".npz")
                      and EMBED_STORE_TEMPORARY not in n)  # fmt: skip

    def open_part(self, name: str) -> IO[bytes]:
        with self.fs.open_input_stream(f"{self.parts_key}/{name}") as f:
            return io.BytesIO(f.read())

    def put(self, name: str, write: Callable[[IO[bytes]], None]) -> None:
        """One object of the parts: built in memory, then uploaded (whole or absent)."""
        buffer = io.BytesIO()
        write(buffer)
        with self._upload(f"{self.parts_key}/{name}") as f:
            f.write(buffer.getvalue())

    def put_sidecar(self, text: str) -> None:
        with self._upload(str(Path(self.key).with_suffix(".json"))) as f:
            f.write(text.encode())

    def output(self):
        """The output's upload (see `_upload`)."""
        return self._upload(self.key)

    @contextmanager
    def _upload(self, key: str) -> Iterator[IO[bytes]]:
        """One object, whole or absent, and an earlier object of that name whole until the
        new one replaces it. pyarrow cannot abandon an upload (closing a stream after an
        error publishes what was written so far), so the object is uploaded under a
        temporary name, copied to `key` (one request, which replaces an object whole) and
        the temporary one deleted; after an error only the temporary one is. A killed
        process never completes its upload: no object appears under either name."""
        temporary = f"{key}{EMBED_STORE_TEMPORARY}{uuid.uuid4().hex}"
        stream = self.fs.open_output_stream(temporary)
        try:
            yield stream
            stream.close()
            self.fs.copy_file(temporary, key)
        except BaseException:
            with contextlib.suppress(OSError):  # a close that fails published nothing
                stream.close()
            with contextlib.suppress(OSError):  # one a store keeps is no part and no output
                self.fs.delete_file(temporary)
            raise
        with contextlib.suppress(OSError):  # `key` stands whole; a temporary one kept is
            self.fs.delete_file(temporary)  # no part and no output (EMBED_STORE_TEMPORARY)

    def __str__(self) -> str:
        return self.uri


def file_system(uri: str, storage_options: dict | None = None):
    """(pyarrow file system, path in it) for `uri`. For `s3://` the storage options take
    LanceDB's names (what `--storage-option` gives an index), else the AWS_* environment;
    other schemes take their own environment's credentials."""
    from pyarrow import fs

    scheme = uri.split("://", 1)[0].lower()
    if scheme not in ("s3", "s3a"):
        if storage_options:
            raise ValueError(f"storage options are for s3:// outputs; {scheme}:// takes "
                             "its credentials from its environment. Received: "
                             f"{storage_options}")  # fmt: skip
        return fs.FileSystem.from_uri(uri)
    options = dict(storage_options or {})
    unknown = sorted(set(options) - set(EMBED_STORE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown storage option(s) {', '.join(unknown)}: expected "
                         f"{', '.join(EMBED_STORE_OPTIONS)}")  # fmt: skip
    given = {EMBED_STORE_OPTIONS[key]: value for key, value in options.items()}
    env = os.environ
    endpoint = given.get("endpoint") or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT")
    allow_http = given.get("allow_http", env.get("AWS_ALLOW_HTTP", "false"))
    region = given.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    retries = fs.AwsStandardS3RetryStrategy(EMBED_STORE_ATTEMPTS)
    arguments = dict(access_key=given.get("access_key"), secret_key=given.get("secret_key"),
                     session_token=given.get("session_token"), region=region,
                     endpoint_override=endpoint, connect_timeout=EMBED_STORE_CONNECT_S,
                     retry_strategy=retries)  # fmt: skip
    if str(allow_http).lower() in ("1", "true", "yes"):
        arguments["scheme"] = "http"
    arguments = {k: v for k, v in arguments.items() if v is not None}
    return fs.S3FileSystem(**arguments), uri.split("://", 1)[1]


def _first_line(text: str) -> str:
    """The SDK's words for an error no fault names."""
    return text.splitlines()[0] if text else "the store refused"


def place(path: str | os.PathLike, storage_options: dict | None = None):
    """A `LocalPlace` or an `ObjectPlace` for `path`."""
    if is_uri(path):
        return ObjectPlace(str(path), storage_options)
    if storage_options:
        raise ValueError(f"storage options are for an object-store output (s3://…). "
                         f"Received: {storage_options} for {path}")  # fmt: skip
    return LocalPlace(path)
