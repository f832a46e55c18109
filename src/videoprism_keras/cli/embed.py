"""`videoprism embed`: videos → an embeddings file (.npy + .json, .npz or .parquet)."""

from __future__ import annotations

import argparse

from ..apps.object_store import is_uri
from ..constants import EMBED_KINDS
from .inputs import (
    check_output,
    check_suffix,
    on_ray,
    report_failures,
    sources,
    storage_options,
)
from .models import ModelOptions, preset_id
from .parser import (
    UsageError,
    add_command,
    add_model_options,
    add_ray_options,
    add_window_options,
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "embed", "videos → embeddings file (.npy + .json, .npz or "
                    ".parquet)", embed)  # fmt: skip
    p.add_argument("videos", nargs="+", help="video files, image folders or folders of videos")
    output_help = ("the embeddings file: .npz, .npy (with a .json of names and times beside "
                   "it) or .parquet")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help=output_help)
    store_help = ("for an -o on an object store (s3://…): LanceDB's option names, as for an "
                  "index (repeat for several)")  # fmt: skip
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help=store_help)  # fmt: skip
    kind_help = "one vector per video or clip, one per frame, or the token features"
    p.add_argument("--kind", choices=EMBED_KINDS, default="video", help=kind_help)
    add_window_options(p)
    resume_help = "continue an interrupted run into the same -o (or add videos to a finished one)"
    p.add_argument("--resume", action="store_true", help=resume_help)
    add_ray_options(p)
    add_model_options(p, text=False)


def embed(args: argparse.Namespace) -> dict:
    from ..apps.embed_writer import SUFFIXES, EmbeddingWriter
    from ..apps.embedding import embed_batches, nothing_embedded

    store = storage_options(args.storage_option)
    if is_uri(args.output):
        _check_object_output(args, SUFFIXES, store)  # before hours of work, not after
    else:
        if store:
            raise UsageError("--storage-option is for an -o on an object store (s3://…); "
                             f"-o {args.output} is a local file")  # fmt: skip
        check_output(args.output, SUFFIXES, "-o")  # before hours of work, not after
    files = sources(args, args.videos)  # before the model loads: a typo fails at once
    options = ModelOptions.from_args(args)
    model = options.load()
    frames, size = options.sampling(model)
    settings = {"--kind": args.kind, "--preset": preset_id(options.preset_name),
                "--frames": frames, "--size": list(size), "--clip-seconds": args.clip_seconds,
                "--stride-seconds": args.stride_seconds,
                "--dtype": args.dtype or "float32",
                "--engine": options.chosen_engine}  # fmt: skip
    writer = EmbeddingWriter(args.output, settings, resume=args.resume, storage_options=store)
    failures: list = []
    if args.ray:
        failures = on_ray(args, options, model, files, writer)
    else:
        stream = embed_batches(model, files, kind=args.kind, batch_size=args.batch_size,
                               num_frames=frames, size=size, clip_seconds=args.clip_seconds,
                               stride_seconds=args.stride_seconds, progress=options.progress,
                               on_error="skip", exclude=writer.done,
                               encoder=options.encoder(model))  # fmt: skip
        for batch in stream:
            writer.write(batch)
        failures = stream.failures
    try:
        path, shape = writer.finish(args.kind)
    except ValueError as err:  # nothing at all was embedded
        if not failures:
            raise
        report_failures(failures[1:], embedded=0, summary=False)
        raise nothing_embedded(failures) from err
    report_failures(failures, embedded=shape[0], strict=args.strict)
    if not args.json:
        resumed = f" ({writer.resumed} from the earlier run)" if writer.resumed else ""
        print(f"{shape[0]} {args.kind} embeddings {tuple(shape)}{resumed} → {path}")
    return {"output": str(path), "shape": list(shape), "failures": failures,
            "resumed": writer.resumed}  # fmt: skip


def _check_object_output(args: argparse.Namespace, suffixes: tuple, store: dict | None) -> None:
    """An object-store output that can be reached, with the file type and options known."""
    from ..apps import embed_store

    check_suffix(args.output, suffixes, "-o")
    where = f"-o {args.output}"
    if args.ray:
        raise UsageError(f"{where}: --ray writes its embeddings to a local file: give a local "
                         "-o, then copy it (e.g. aws s3 cp), or leave out --ray")  # fmt: skip
    try:
        embed_store.ObjectPlace(str(args.output), store).check()
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from err
    except OSError as err:
        raise UsageError(f"{where}: cannot reach it: {err}; nothing was written") from err
