"""`videoprism moments`: when in long videos something happens, as start–end moments; from
an index's windows, or from video files streamed window by window without one."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..constants import (
    MOMENT_CLIP_SECONDS,
    MOMENT_STRIDE_SHARE,
    MOMENT_TITLE,
    MOMENT_TOP_K,
    WHERE_COLUMNS,
)
from . import parser
from .inputs import report_failures, storage_options, video_files, where_and_plot
from .models import ModelOptions, index_options
from .parser import UsageError, add_command, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    help_ = "when in long videos something happens: ranked start–end moments"
    p = add_command(subparsers, "moments", help_, moments)
    sources_help = ("an index folder (or LanceDB URI) written by videoprism index --clip-seconds, "
                    "or video files and folders, streamed without an index")  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="INDEX|FILE", help=sources_help)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="moments matching these words (LvT models)")
    query.add_argument("--video", help="moments like this example video")
    query.add_argument("--image", help="moments like this still picture")
    p.add_argument("--top-k", type=positive(int), default=MOMENT_TOP_K,
                   help="how many moments to list")  # fmt: skip
    where_help = "with an INDEX: SQL filter over " + ", ".join(WHERE_COLUMNS)
    p.add_argument("--where", help=where_help + " (default: none)")
    p.add_argument("--under", help="with an INDEX: only videos in this folder (default: all)")
    p.add_argument("--shots", action="store_true", help="snap the moments' edges to shot cuts")
    clip_help = f"with FILEs: window length in seconds (default {MOMENT_CLIP_SECONDS:g})"
    p.add_argument("--clip-seconds", type=positive(float), help=clip_help)
    stride_help = "with FILEs: from one window's start to the next (default: half a window)"
    p.add_argument("--stride-seconds", type=positive(float), help=stride_help)
    p.add_argument("--plot", help="write each video's similarity over time, moments shaded (PNG)")
    title_help = f"the --plot picture's title (default: {MOMENT_TITLE.format('QUERY')!r})"
    p.add_argument("--title", help=title_help)
    parser.add_storage_option(p)
    parser.add_model_options(p)


def is_index(source: str) -> bool:
    """Whether a source names an index rather than videos: a URI, or a folder holding the
    index's table (or the format before it)."""
    from ..apps.index import legacy, store  # numpy only: no LanceDB yet

    if "://" in source:
        return True
    folder = Path(source)
    return (folder / f"{store.TABLE}.lance").exists() or legacy.is_legacy(folder)


def _check_not_video_uri(source: str) -> None:
    """A URI names an INDEX; one of a video file is a usage error here, not an index
    said to be damaged."""
    from urllib.parse import urlparse

    from ..apps.embedding import VIDEO_SUFFIXES

    if "://" in source and Path(urlparse(source).path).suffix.lower() in VIDEO_SUFFIXES:
        raise UsageError(f"{source} is a video URI, and moments of video FILEs read local "
                         "files: download it first, or index it (a URI here names an "
                         "INDEX)")  # fmt: skip


def moments(args: argparse.Namespace) -> list:
    check_query(args)
    where = where_and_plot(args)
    for source in args.sources:
        _check_not_video_uri(source)
    indexes = [s for s in args.sources if is_index(s)]
    if indexes and len(args.sources) > 1:
        raise UsageError(f"{indexes[0]} is an index: give one INDEX, or video FILEs, not both")
    if indexes:
        found, curves = _from_index(args, where)
    else:
        found, curves = _from_files(args)
    _show(args, found)
    if args.plot and not curves:  # flat curves (nothing above the baseline): no picture
        print(f"videoprism: note: no moments, so no --plot {args.plot} written",
              file=sys.stderr)  # fmt: skip
    elif args.plot:
        from ..plots import plot_timeline

        title = args.title or MOMENT_TITLE.format(_query_name(args))
        plot_timeline(curves, found, args.plot, title)
    return [m.as_dict() for m in found]


def check_query(args: argparse.Namespace) -> None:
    """The query, before any model loads: words, or a readable video or picture."""
    if args.text is not None:
        if not args.text.strip():
            raise UsageError("--text is empty: give the words to look for")
        return
    flag, given = ("--video", args.video) if args.video is not None else ("--image", args.image)
    path = Path(given)
    if path.is_dir():
        raise UsageError(f"{flag} {given} is a folder: give one file as the query")
    if not path.exists():
        raise UsageError(f"{flag} {given}: no such file")
    if flag == "--image":
        _check_image(path)
    else:
        from ..video.decode import VideoDecodeError, stated_timing

        try:
            stated_timing(path)
        except VideoDecodeError as err:
            raise UsageError(f"--video {err}") from err


def _check_image(path: Path) -> None:
    from PIL import Image

    from ..video.frames import IMAGE_SUFFIXES

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        shown = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UsageError(f"--image {path}: expected a picture ({shown}); a video or GIF is "
                         "a --video")  # fmt: skip
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for a damaged file
        raise UsageError(f"--image {path}: not a readable picture ({err})") from err


def _from_index(args: argparse.Namespace, where: str | None) -> tuple[list, list]:
    from ..apps import VideoIndex

    for flag in ("clip_seconds", "stride_seconds"):
        if getattr(args, flag) is not None:
            name = "--" + flag.replace("_", "-")
            raise UsageError(f"{name} is for video FILEs: an INDEX has its own windows")
    (uri,) = args.sources
    held = VideoIndex.load(uri, storage_options=storage_options(args.storage_option))
    if held.meta.get("clip_seconds") is None:
        raise UsageError(f"{uri} holds whole videos, not windows: moments need an index built "
                         "with videoprism index --clip-seconds S (into another -o), or give "
                         "the video FILEs")  # fmt: skip
    if args.under is not None and "://" not in uri and not Path(args.under).is_dir():
        raise UsageError(f"--under {args.under}: no such folder")
    options = index_options(ModelOptions.from_args(args), held.meta, same_sampling=True)
    model = options.load(need_text=args.text is not None)
    encoder = options.encoder(model)  # one compiled model for the query and the refinement
    query = _embed_query(args, options, model, encoder)
    try:
        found = held.moments(query, args.top_k, where=where, under=args.under, model=model,
                             shots=args.shots, batch_size=options.batch_size,
                             encoder=encoder)  # fmt: skip
    except ValueError as err:
        if where and "filter" in str(err):  # the grammar's, but not the column's type
            raise UsageError(f"--where {args.where!r}: {err}") from err
        raise
    curves = []
    if args.plot and found:
        paths = list(dict.fromkeys(m.path for m in found))
        curves = held.curves(query, where=where, under=args.under, paths=paths)
    return found, curves


def _from_files(args: argparse.Namespace) -> tuple[list, list]:
    for flag in ("where", "under"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} is for an INDEX: video FILEs are all searched")
    files = video_files(args.sources)
    clip = args.clip_seconds or MOMENT_CLIP_SECONDS
    stride = args.stride_seconds or clip * MOMENT_STRIDE_SHARE
    for path in files:
        _check_long_enough(path, clip)
    options = dataclasses.replace(ModelOptions.from_args(args), clip_seconds=clip,
                                  stride_seconds=stride)  # fmt: skip
    from ..apps.refine import refine
    from ..apps.streaming import stream_curves
    from ..apps.timeline import moments_of

    model = options.load(need_text=args.text is not None)
    frames, size = options.sampling(model)
    encoder = options.encoder(model)  # compiled once for the query, the stream and the refinement
    query = _embed_query(args, options, model, encoder)
    stream = stream_curves(model, files, query, clip_seconds=clip, stride_seconds=stride,
                           num_frames=frames, size=size, batch_size=options.batch_size,
                           progress=options.progress, encoder=encoder,
                           on_error="raise" if args.strict else "skip")  # fmt: skip
    curves = list(stream)  # a few numbers per window: the frames are gone already
    report_failures(stream.failures, embedded=len(curves), strict=args.strict)
    if not curves:
        raise RuntimeError("no video could be read: nothing to search")
    coarse = moments_of(curves, args.top_k)
    found = refine(model, coarse, query, clip_seconds=clip, stride_seconds=stride,
                   num_frames=frames, size=size, shots=args.shots,
                   batch_size=options.batch_size, encoder=encoder)  # fmt: skip
    shown = {m.path for m in found}
    return found, [c for c in curves if c.path in shown]


def _check_long_enough(path: str, clip: float) -> None:
    """A FILE of at least one window, from its stated duration (nothing decoded): a
    shorter one is a clip to give as the query, or needs shorter windows."""
    from ..video.decode import VideoDecodeError, stated_timing

    try:
        duration, _ = stated_timing(path)
    except VideoDecodeError as err:
        raise UsageError(str(err)) from err
    if duration and duration < clip - 1e-3:
        raise UsageError(f"{path} is {duration:.2f} s long, shorter than one window "
                         f"(--clip-seconds {clip:g}): give a shorter --clip-seconds")  # fmt: skip


def _embed_query(args: argparse.Namespace, options: ModelOptions, model, encoder):
    """The query's embedding, (D,): a text's, or a video's or picture's sampled whole at the
    windows' frames and size (a picture is a video of that frame repeated)."""
    if args.text is not None:
        ids, mask = options.load_tokenizer(model).tokenize_texts([args.text])
        return encoder.text(ids, mask)[0]
    flag, path = ("--video", args.video) if args.video is not None else ("--image", args.image)
    from ..apps import embed_videos

    frames, size = options.sampling(model)
    try:  # checked before the model loaded, but a file may still fail to decode
        vectors = embed_videos(model, [path], batch_size=1, num_frames=frames, size=size,
                               progress=False, on_error="raise",
                               encoder=encoder).vectors  # fmt: skip
    except ValueError as err:  # a VideoDecodeError: "PATH: why"
        raise UsageError(f"{flag} {err}") from err
    return vectors[0]


def _query_name(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    return Path(args.video if args.video is not None else args.image).name


def _show(args: argparse.Namespace, found: list) -> None:
    if args.json:
        return
    if not found:
        print(f"no moments for {_query_name(args)!r}")
    for moment in found:
        print(f"{moment.score:6.3f}  {moment.path} [{moment.start_s:.1f}–{moment.end_s:.1f} s]")
