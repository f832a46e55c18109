"""Where an export goes: checked before any work, and written there all at once.

Keras-free, so that the CLI refuses a bad `-o` before Keras loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .constants import EXPORT_SUFFIXES


def check_destination(filepath: str | os.PathLike, format: str) -> None:
    """Whether the artefact can go to `filepath`, checked before any work: a `ValueError`
    naming `filepath` if not (its `cli_message` names `-o`). The folder it goes in must
    exist and be writable (an export creates no folders: a typo would hide the artefact);
    a SavedModel goes to a new or empty folder, never among other files."""
    path = Path(filepath)
    shown = os.fspath(filepath)
    suffix = EXPORT_SUFFIXES.get(format)

    def refuse(problem: str) -> None:
        err = ValueError(f"filepath={shown!r}: {problem}")
        err.cli_message = f"-o {shown}: {problem}"
        raise err

    if suffix and not shown.endswith(suffix):
        refuse(f"expected a {suffix} file (a {format} artefact is one)")
    if suffix and path.is_dir():
        refuse(f"is a folder; a {format} artefact is a {suffix} file")
    if not suffix and path.exists() and not path.is_dir():
        refuse("is a file; a tf_saved_model artefact is a folder (a new or empty one)")
    if not suffix and path.is_symlink():  # the renaming at the end would fail on it
        refuse("is a symbolic link; give a new or empty folder for the SavedModel")
    if not suffix and path.is_dir() and any(path.iterdir()):
        refuse("is a folder that is not empty; give a new or empty folder for the SavedModel")
    parent = path.parent
    if not parent.is_dir():
        refuse(f"folder {parent} does not exist (export creates no folders): create it first")
    if not _writable(parent):
        refuse(f"cannot write in folder {parent} (read-only or permission denied)")


def _writable(folder: Path) -> bool:
    """Whether files can be made in `folder`: its permissions, then a probe (a read-only
    mount, or an ACL, passes `os.access` for root)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".export-probe-", dir=folder))
    except OSError:
        return False
    return True


def write_atomically(filepath: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """`write(path)` into a hidden sibling folder, then renamed into place: an export that
    fails or is killed leaves no half-written artefact under `filepath`. Files written
    beside the artefact (an ONNX model's external weights) move along, before it."""
    target = Path(filepath)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                    dir=target.parent))  # fmt: skip
    try:
        staged = staging / target.name
        write(staged)
        for extra in sorted(staging.iterdir()):
            if extra != staged:
                os.replace(extra, target.parent / extra.name)
        os.replace(staged, target)  # replaces a file, or an empty folder (a SavedModel's)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
