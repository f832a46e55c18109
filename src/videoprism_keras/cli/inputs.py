"""What goes in and out of a command: its sources and outputs checked before the model
loads (a typo fails at once, not after hours of work), the inputs that failed reported,
and the work handed to Ray.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..apps.object_store import is_uri
from ..apps.where import check_where
from .models import ModelOptions, preset_id
from .parser import UsageError

if TYPE_CHECKING:
    from ..apps import Embeddings, VideoIndex
    from ..apps.embed_writer import EmbeddingWriter
    from ..model.backbone import VideoPrismBackbone


def video_files(sources: list) -> list[str]:
    """`apps.find_videos`, its errors as usage errors."""
    from ..apps import find_videos

    try:
        return find_videos(sources)
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err


def check_output(path: str | os.PathLike, suffixes: tuple[str, ...], flag: str) -> None:
    """An output file we can write, checked before any model work starts."""
    if is_uri(path):
        raise UsageError(f"{flag} {path}: expected a local file name, not a URI (only an "
                         "index may be on an object store): write the file here, then copy "
                         "it (e.g. aws s3 cp)")  # fmt: skip
    check_suffix(path, suffixes, flag)
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{flag} {path} is a directory; expected a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: folder {parent} is not writable")


def check_suffix(path: str | os.PathLike, suffixes: tuple[str, ...], flag: str) -> None:
    """An output's file type is one of `suffixes` (a local file's or an object's)."""
    if Path(os.fspath(path)).suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a {' or '.join(suffixes)} file")


def where_and_plot(args: argparse.Namespace) -> str | None:
    """A search's `--where` (checked: the filter to pass on, or None) and its `--plot` /
    `--title` (an output we can write; a title only with a picture)."""
    try:
        where = check_where(args.where)
    except ValueError as err:
        raise UsageError(f"--where {args.where!r}: {err}") from err
    if args.plot:
        check_output(args.plot, (".png",), "--plot")
    elif args.title is not None:
        raise UsageError("--title is the --plot picture's: add --plot FILE.png")
    return where


def check_index_folder(output: str | os.PathLike) -> None:
    """A local index folder that cannot be written fails now, not after the model loads."""
    if is_uri(output):
        return
    path = Path(output).absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {output} is a file, not an index folder: give a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"-o {output}: cannot write in {existing} (permission denied or not a "
                         "folder): choose another -o, or make it writable")  # fmt: skip


def storage_options(items: list[str]) -> dict | None:
    """--storage-option KEY=VALUE (repeated) → LanceDB's `storage_options`, or None."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option takes KEY=VALUE. Received: {item!r}")
        options[key] = value
    return options or None


def report_failures(failures: list, embedded: int, strict: bool = False,
                    summary: bool = True) -> None:  # fmt: skip
    """One line per input that failed, then a count; with --strict any failure is an error."""
    for path, error in failures:
        print(f"videoprism: skipped {path}: {error}", file=sys.stderr)
    if not failures or not summary:
        return
    count = f"{len(failures)} input(s) failed, {embedded} item(s) embedded"
    if strict:
        raise RuntimeError(f"{count} (--strict makes any failure an error)")
    print(f"videoprism: {count}", file=sys.stderr)


def sources(args: argparse.Namespace, given: list[str]) -> list[str]:
    """`index`/`embed` sources, checked before the model loads; with --ray also globs and
    .parquet/.csv lists, and Ray's address must answer."""
    if not args.ray:
        for flag in ("workers", "num_gpus_per_worker"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} is an option of --ray: add --ray")
        return video_files(given)
    from ..apps import ray_pipeline

    if args.ray != "local" and os.path.exists(args.ray):  # `--ray videos/ more/`: a source
        raise UsageError(f"--ray takes a Ray address, not {args.ray!r}: put --ray after the "
                         "sources, or write --ray=ADDRESS")  # fmt: skip
    try:
        # Sources named here must exist; an entry of a list that does not is one failure
        # of the run (the pipeline lists the sources again, knowing which is which).
        local = ray_pipeline.local_sources(given)
        if local:
            video_files(local)
        ray_pipeline.check_address(None if args.ray == "local" else args.ray)
    except ray_pipeline.RayUnavailable as err:
        raise UsageError(f"--ray {args.ray}: {err}") from err
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    return given


def on_ray(
    args: argparse.Namespace,
    options: ModelOptions,
    model: VideoPrismBackbone,
    files: list[str],
    target: VideoIndex | EmbeddingWriter,
) -> Embeddings | list:
    """`index`/`embed` on Ray: into a VideoIndex (→ what `add_videos` returns) or an
    EmbeddingWriter (→ the failures)."""
    from ..apps import ray_pipeline as rp
    from ..apps.embed_writer import EmbeddingWriter

    loader = rp.PresetLoader(preset_id(options.preset_name), options.overrides(),
                             quantize="int8" if options.keras_int8 else None)  # fmt: skip
    ray = rp.RayOptions(workers=args.workers, num_gpus_per_worker=args.num_gpus_per_worker
                        or 0.0, batch_size=options.batch_size, progress=options.progress,
                        address=None if args.ray == "local" else args.ray,
                        engine=options.ray_engine)  # fmt: skip
    frames, size = options.sampling(model)
    common = dict(num_frames=frames, size=size, load_model=loader, options=ray)
    clip_seconds, stride_seconds = options.clip_seconds, options.stride_seconds
    try:
        if isinstance(target, EmbeddingWriter):
            return rp.embed_on_ray(model, files, target, args.kind, clip_seconds,
                                   stride_seconds, **common).failures  # fmt: skip
        return rp.index_on_ray(model, files, target, clip_seconds, stride_seconds,
                               shots=getattr(args, "shots", False), **common)  # fmt: skip
    except rp.RayUnavailable as err:
        raise UsageError(f"--ray {args.ray}: {err}") from err


def ray_target(flag: str | None):
    """--ray as the library takes it (`copies`, the eval cache): None, True (a new local
    instance) or an address."""
    return None if flag is None else (True if flag == "local" else flag)
