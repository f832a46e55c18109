"""The engines' on-disk cache: one folder per key, built once, never read half-built.

The key is a SHA-256 of what the artefact depends on (`key_inputs`): the weights, the
configuration that shapes the computation, the clip shape, the precision, the engine and
its version (NNCF's too for OpenVINO int8), the calibration asked for, and
`ENGINE_CACHE_FORMAT`. The artefact is built in a hidden folder beside its place and
renamed into place once complete, with its `meta.json` (the key's inputs, the calibration
used, versions, creation time) written last: a build that fails or is killed leaves no
folder under the key, and the next build removes its leftovers. Builders of one key take
turns on a lock file (the second finds the first's artefact); where locks do not work the
rename still lets one win, and the loser removes its own copy. An artefact built
elsewhere (a Ray driver's, shipped to its actors) is installed the same way (`install`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..constants import ENGINE_CACHE_FOLDER, ENGINE_CACHE_FORMAT, ENGINE_KEY_DIGITS

META = "meta.json"
PARTIAL = ".partial"


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """`cache_dir`, or `hub.cache_root()/"engines"`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from ..hub import cache_root

    return cache_root() / ENGINE_CACHE_FOLDER


def key_of(inputs: dict[str, Any]) -> str:
    """The SHA-256 (hex) of `inputs` (JSON, sorted keys) and the cache format."""
    text = json.dumps({**inputs, "cache_format": ENGINE_CACHE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_of(root: Path, key: str) -> Path:
    return root / key[:ENGINE_KEY_DIGITS]


def is_built(folder: Path) -> bool:
    """Whether `folder` holds a complete artefact: its meta.json is written last, and the
    folder only appears, by a rename, once everything is in it."""
    return (folder / META).is_file()


def read_meta(folder: Path) -> dict:
    return json.loads((folder / META).read_text())


def cached(
    root: Path, inputs: dict[str, Any], build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict]:
    """The built artefact of `inputs` under `root`: found, or built once by `build`.

    Args:
        root: the cache folder (made if missing).
        inputs: what the artefact depends on (JSON-serialisable): its key's inputs.
        build: writes the artefact's files into the folder it is given (a hidden one
            beside the artefact's place), and returns details for its meta.json (the
            calibration used, versions).

    Returns:
        (the artefact's folder, its meta.json as a dict).
    """
    key = key_of(inputs)
    folder = folder_of(root, key)
    if is_built(folder):
        return folder, read_meta(folder)
    return _publish(root, folder, lambda staging: _metadata(key, inputs, build(staging)))


def _metadata(key: str, inputs: dict[str, Any], details: dict[str, Any]) -> dict:
    return {"key": key, "inputs": inputs, "cache_format": ENGINE_CACHE_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **details}  # fmt: skip


def install(root: Path, files: dict[str, bytes], meta: dict) -> Path:
    """An artefact built elsewhere (`files_of`'s files, its `meta.json` as a dict) put
    under `root` as `cached` puts a build: staged beside its place, renamed in once
    complete. A key already there is left as it is (a no-op). Returns its folder."""
    folder = folder_of(root, meta["key"])
    if is_built(folder):
        return folder

    def write(staging: Path) -> dict:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        return meta

    return _publish(root, folder, write)[0]


def files_of(folder: Path) -> dict[str, bytes]:
    """A built artefact's files besides its meta.json, by name (what `install` takes)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != META}


def _publish(root: Path, folder: Path, fill: Callable[[Path], dict]) -> tuple[Path, dict]:
    """`folder` under `root`, unless already built: `fill` writes the files into a hidden
    staging folder and returns the meta.json, written last; then one rename puts it in
    place (under the key's lock)."""
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{folder.name}.lock"):
        if is_built(folder):  # another builder finished while this one waited
            return folder, read_meta(folder)
        _remove_leftovers(root, folder.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=PARTIAL, dir=root))
        try:
            meta = fill(staging)
            (staging / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            try:
                os.rename(staging, folder)  # atomic; fails if the folder exists
            except OSError:
                if not is_built(folder):  # not another builder's win: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder, read_meta(folder)


def _remove_leftovers(root: Path, name: str) -> None:
    """Staging folders of earlier builds of this key that died (run under the key's lock,
    so no live builder owns one; without working locks a live one's rename then fails,
    and it reports the error rather than leave a half-built artefact)."""
    for leftover in root.glob(f".{name}.*{PARTIAL}"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` for the block (released by the OS if the process dies);
    without fcntl (Windows) none: the atomic rename still keeps one artefact."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
