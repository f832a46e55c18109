"""`videoprism index` and `videoprism search`: a searchable video index, built and asked."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..constants import (
    ANN_THRESHOLD,
    INDEX_KEEP_VERSIONS_MIN_SECONDS,
    INDEX_KEEP_VERSIONS_SECONDS,
    SEARCH_TITLE,
    SHOTS_CLIP_SECONDS,
    WHERE_COLUMNS,
)
from . import parser
from .inputs import (
    check_index_folder,
    on_ray,
    report_failures,
    sources,
    storage_options,
    video_files,
    where_and_plot,
)
from .models import INDEX_TOKENIZER, ModelOptions, index_options, preset_id
from .parser import UsageError, add_command, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "index", "build or extend a searchable video index", index)
    p.add_argument("sources", nargs="*", help="video files or folders")
    output_help = "index folder or LanceDB URI (s3://…); extended if it exists (required)"
    p.add_argument("-o", "--output", help=output_help)
    optimize_help = ("maintain the index INDEX instead of adding videos, for a cron: compact "
                     "its fragments, bring its vector index up to date, delete old versions "
                     "(writers do it as they go when due)")  # fmt: skip
    p.add_argument("--optimize", metavar="INDEX", help=optimize_help)
    keep_help = ("seconds a replaced index version is kept for readers still on it before "
                 f"maintenance deletes it (default {INDEX_KEEP_VERSIONS_SECONDS:g}: longer than "
                 "any read of one version; at least "
                 f"{INDEX_KEEP_VERSIONS_MIN_SECONDS:g})")  # fmt: skip
    p.add_argument("--keep-versions", type=positive(float), metavar="SECONDS", help=keep_help)
    parser.add_window_options(p)
    shots_help = ("windows at shot cuts (PySceneDetect), long shots split into equal parts of "
                  f"at most --clip-seconds (default with --shots: {SHOTS_CLIP_SECONDS:g}); "
                  "recorded in the index, which is then extended with --shots only")  # fmt: skip
    p.add_argument("--shots", action="store_true", help=shots_help)
    ann_help = f"index size from which a vector index is built (default {ANN_THRESHOLD:,})"
    p.add_argument("--ann-threshold", type=positive(int), help=ann_help)
    parser.add_ray_options(p)
    parser.add_storage_option(p)
    parser.add_model_options(p, text=False)
    tokenizer_help = ("SentencePiece model, recorded in a new index for text search and serve "
                      "(default: the preset's own)")  # fmt: skip
    p.add_argument("--tokenizer", help=tokenizer_help)
    # What --optimize refuses (it adds no videos): every flag but its own, as parsed here.
    p.set_defaults(writing_flags=_writing_flags(p))

    p = add_command(subparsers, "search", "search an index by text or by example video", search)
    p.add_argument("index", help="an index folder (or LanceDB URI) written by videoprism index")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="search by these words (LvT models)")
    query.add_argument("--video", help="search by this example video")
    p.add_argument("--top-k", type=positive(int), default=5, help="how many hits to show")
    where_help = "SQL filter over " + ", ".join(WHERE_COLUMNS)
    p.add_argument("--where", help=where_help + ' (e.g. "duration_s > 60"; default: none)')
    p.add_argument("--under", help="only videos in this folder (or below; default: all)")
    p.add_argument("--per-video", action="store_true", help="the best clip of each video")
    p.add_argument("--exact", action="store_true", help="exact search even past --ann-threshold")
    p.add_argument("--plot", help="write the top hits as frame strips (PNG)")
    title_help = f"the --plot picture's title (default: {SEARCH_TITLE.format('QUERY')!r})"
    p.add_argument("--title", help=title_help)
    parser.add_storage_option(p)
    parser.add_model_options(p)


def index(args: argparse.Namespace) -> dict:
    from ..apps import VideoIndex

    _check_keep_versions(args)
    store = storage_options(args.storage_option)
    if args.optimize is not None:
        return _optimize(args, store)
    if not args.sources or not args.output:
        missing = " and ".join(n for n, v in (("SOURCES", args.sources), ("-o INDEX", args.output))
                               if not v)  # fmt: skip
        raise UsageError(f"give {missing}: index SOURCES (video files or folders) into -o INDEX, "
                         "or maintain an index with --optimize INDEX")  # fmt: skip
    check_index_folder(args.output)
    if args.shots and args.stride_seconds is not None:
        raise UsageError("--stride-seconds: with --shots the windows follow the shots, with no "
                         "stride; leave --stride-seconds out")  # fmt: skip
    threshold = {"ann_threshold": args.ann_threshold} if args.ann_threshold else {}
    held = VideoIndex(args.output, storage_options=store, **threshold)
    _keep_versions(held, args)
    if len(held):
        from ..apps.index.table import check_shots

        try:
            check_shots(args.output, held.meta, args.shots, "--shots")
        except ValueError as err:
            raise UsageError(f"--shots: {err}") from err
    options = index_options(ModelOptions.from_args(args), held.meta, writing=True)
    if args.shots:  # no stride (the index records its clip length as one)
        clip = options.clip_seconds or SHOTS_CLIP_SECONDS
        options = dataclasses.replace(options, clip_seconds=clip, stride_seconds=None)
    files = sources(args, args.sources)
    model = options.load(text_later=True)
    frames, size = options.sampling(model)
    # On Ray: the engine and precision the actors run (recorded as a local run's).
    encoder = options.ray_engine if args.ray else options.encoder(model)
    if len(held):  # the same model, by content, before any video is decoded
        check_model(held, model, options, frames, size, args.shots, encoder)
    else:
        meta = {"preset": preset_id(options.preset_name)}
        if options.preset_name.endswith(".npz"):
            meta["soft_cap"] = options.cap
        if options.tokenizer:  # `search --text` and `serve` then need no --tokenizer
            meta[INDEX_TOKENIZER] = str(options.tokenizer_file().resolve())
        elif model.is_multimodal and options.preset_name.endswith(".npz"):
            print("videoprism: note: the .npz holds no tokenizer and none was given, so text "
                  "search on this index will need --tokenizer (give it to the first `index` "
                  "to record it)", file=sys.stderr)  # fmt: skip
        held = VideoIndex(args.output, storage_options=store, meta=meta, **threshold)
        _keep_versions(held, args)
    if args.ray:
        added = on_ray(args, options, model, files, held)
    else:
        added = held.add_videos(model, files, options.clip_seconds, options.stride_seconds,
                                batch_size=options.batch_size, num_frames=frames, size=size,
                                progress=options.progress, on_error="skip",
                                shots=args.shots, encoder=encoder)  # fmt: skip
    report_failures(added.failures, embedded=len(added), strict=args.strict)
    total = len(held)
    if not args.json:
        skipped = f" (skipped {added.skipped} already indexed)" if added.skipped else ""
        print(f"indexed {len(added)} items{skipped}; {args.output} now holds {total}")
    # Commits made, and the tries they took: more where other writers got in the way.
    return {"index": str(args.output), "added": len(added), "skipped": added.skipped,
            "size": total, "commits": held.attempts.commits,
            "commit_attempts": held.attempts.attempts}  # fmt: skip


# The flags that go with --optimize (and how every command reports): the others add videos.
_OPTIMIZE_FLAGS = frozenset({"optimize", "keep_versions", "ann_threshold", "storage_option",
                             "json", "no_progress", "backend", "help", "run"})  # fmt: skip


def _writing_flags(p: argparse.ArgumentParser) -> tuple:
    """(dest, flag as the message names it, default) of `p`'s flags that add videos."""
    return tuple((a.dest, a.option_strings[0] if a.option_strings else a.dest.upper(), a.default)
                 for a in p._actions if a.dest not in _OPTIMIZE_FLAGS)  # fmt: skip


def _check_keep_versions(args: argparse.Namespace) -> None:
    floor = INDEX_KEEP_VERSIONS_MIN_SECONDS
    if args.keep_versions is not None and args.keep_versions < floor:
        raise UsageError(f"--keep-versions {args.keep_versions:g}: a version is kept at least "
                         f"{floor:g} s (a reader mid-search stays on it); give {floor:g} or "
                         "more")  # fmt: skip


def _optimize(args: argparse.Namespace, store: dict | None) -> dict:
    """`index --optimize INDEX`: one maintenance pass, whatever is due."""
    from ..apps.index import ClipTable
    from ..apps.index.store import StoreError
    from ..apps.object_store import is_uri

    given = [flag for dest, flag, default in args.writing_flags
             if getattr(args, dest, default) not in (default, None, False, [])]  # fmt: skip
    if given:
        raise UsageError(f"--optimize maintains an index and adds no videos; got {given[0]}: "
                         "give --optimize INDEX alone (with --keep-versions, --ann-threshold, "
                         "--storage-option), or leave --optimize out to index videos")  # fmt: skip
    threshold = {"ann_threshold": args.ann_threshold} if args.ann_threshold else {}
    try:
        held = ClipTable(args.optimize, storage_options=store, create=False, **threshold)
    except StoreError as err:
        if is_uri(args.optimize):
            raise
        raise UsageError(f"--optimize {err}") from err
    _keep_versions(held, args)
    before = held.stats()
    held.maintain(force=True)
    after = held.stats()
    if not args.json:
        vector = ("none" if not after.has_vector_index
                  else f"{after.unindexed_rows} of {after.rows} rows not in it")  # fmt: skip
        print(f"optimized {args.optimize}: {before.fragments} → {after.fragments} fragments, "
              f"{before.versions} → {after.versions} versions (those replaced in the last "
              f"{held.keep_versions_s:g} s kept); vector index: {vector}")  # fmt: skip
    return {"index": str(args.optimize), "rows": after.rows,
            "fragments": [before.fragments, after.fragments],
            "versions": [before.versions, after.versions], "version": after.version,
            "vector_index": after.vector_index, "unindexed_rows": after.unindexed_rows,
            "keep_versions_s": held.keep_versions_s}  # fmt: skip


def _keep_versions(held, args: argparse.Namespace) -> None:
    """--keep-versions onto the index handle whose maintenance deletes old versions."""
    if args.keep_versions is not None:
        held.keep_versions_s = args.keep_versions


def search(args: argparse.Namespace) -> list:
    from ..apps import VideoIndex

    if args.text is not None and not args.text.strip():
        raise UsageError("--text is empty: give the words to search for")
    if args.video is not None and Path(args.video).is_dir():
        raise UsageError(f"--video {args.video} is a folder: give one video file as the query")
    where = where_and_plot(args)
    held = VideoIndex.load(args.index, storage_options=storage_options(args.storage_option))
    options = index_options(ModelOptions.from_args(args), held.meta, same_sampling=True)
    if args.under is not None and "://" not in args.index and not Path(args.under).is_dir():
        raise UsageError(f"--under {args.under}: no such folder")
    model = options.load(need_text=args.text is not None)
    encoder = options.encoder(model)
    if args.text is not None:
        ids, mask = options.load_tokenizer(model).tokenize_texts([args.text])
        query = encoder.text(ids, mask)
    else:
        query = options.embed(model, video_files([args.video]), encoder=encoder).vectors
    try:
        hits = held.search(query, top_k=args.top_k, where=where, under=args.under,
                           per_video=args.per_video, exact=args.exact or None)[0]  # fmt: skip
    except ValueError as err:
        if where and "filter" in str(err):  # the grammar's, but not the column's type
            raise UsageError(f"--where {args.where!r}: {err}") from err
        raise
    if not args.json:
        from ..video.times import seconds_or_none  # here: numpy is not for --help

        print(f"top {len(hits)} of {len(held)} for {args.text or args.video!r}")
        for hit in hits:
            whole = seconds_or_none(hit.start_s) is None
            when = "" if whole else f" [{hit.start_s:.1f}s-{hit.end_s:.1f}s]"
            print(f"  {hit.score:6.3f}  {hit.path}{when}")
    if args.plot:
        from ..plots import plot_hits

        plot_hits(args.text or Path(args.video).name, hits, args.plot, args.title)
    return [h.as_dict() for h in hits]


def check_model(held, model, options: ModelOptions, frames: int, size,
                shots: bool = False, encoder=None) -> None:  # fmt: skip
    """The model about to write into `held` is the one its embeddings come from, by
    content (the weights' hash and configuration: `apps/index/fingerprint.py`), not
    only by the preset's name or path: a usage error naming the preset otherwise. An
    index written before the hash was recorded is not checked (said once, here)."""
    from ..apps.index.fingerprint import WEIGHTS_KEY

    try:
        held.writer(model, options.clip_seconds, options.stride_seconds, num_frames=frames,
                    size=size, shots=shots, encoder=encoder)  # fmt: skip
    except ValueError as err:
        raise UsageError(f"--preset {options.preset_name}: {err}") from err
    if WEIGHTS_KEY not in held.meta:
        print(f"videoprism: note: {held.uri} was built before indexes recorded their model's "
              "weights, so they cannot be checked against this model's: index into a new "
              "folder to have them checked", file=sys.stderr)  # fmt: skip
