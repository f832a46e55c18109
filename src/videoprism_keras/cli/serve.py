"""`videoprism serve`: a search service and web page over an index."""

from __future__ import annotations

import argparse
import functools
import os
import sys

from ..constants import (
    INDEX_REFRESH_SECONDS,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_TOKEN_ENV,
)
from .inputs import storage_options
from .models import ModelOptions, index_options
from .parser import (
    UsageError,
    add_command,
    add_dtype_option,
    add_sampling_options,
    add_storage_option,
    positive,
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "serve", "a search service and web page over an index", serve)
    p.add_argument("index", help="an index folder (or LanceDB URI) written by videoprism index")
    host_help = f"address to listen on (default {SERVE_HOST}; any other needs --token)"
    p.add_argument("--host", default=SERVE_HOST, help=host_help)
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a name clients reach the server by (their Host header), besides "
                   "localhost, 127.0.0.1, [::1] and --host; repeatable (default: none; with "
                   "--host 0.0.0.0 or :: any name unless one is given)")  # fmt: skip
    p.add_argument("--port", type=int, default=SERVE_PORT, help="port; 0: any free one")
    # No default read from the environment here: the parser would show the secret in --help.
    p.add_argument("--token", help=f"bearer token the API wants (default ${SERVE_TOKEN_ENV}, "
                   "else none)")  # fmt: skip
    add_storage_option(p)
    refresh_help = ("how stale searches may be: look for clips committed meanwhile (by "
                    "`videoprism index`) at most every S seconds; 0: at every query (default: "
                    f"every query in a local folder, {INDEX_REFRESH_SECONDS:g} on an object "
                    "store, where each look is a request)")  # fmt: skip
    p.add_argument("--refresh-seconds", type=positive(float, zero=True), metavar="S",
                   help=refresh_help)  # fmt: skip
    p.add_argument("--preset", help="as for search (default: the one the index was built with)")
    p.add_argument("--soft-cap", type=positive(float), help="as for search (default: the index's)")
    add_dtype_option(p, "as for search (default: the index's)")
    tokenizer_help = "SentencePiece model (default: the index's, else the preset's own)"
    p.add_argument("--tokenizer", help=tokenizer_help)
    add_sampling_options(p)  # of uploaded query videos; the index's by default
    p.add_argument("--workers", type=positive(int), default=1,
                   help="processes answering on the one port, each with its own model and "
                   "snapshot of the index (default 1)")  # fmt: skip


def _index(args: argparse.Namespace):
    from ..apps import VideoIndex

    # Searched many times: past the vector index's threshold, its candidates are re-ranked
    # against vectors held in memory, not read back from the table.
    return VideoIndex.load(args.index, storage_options=storage_options(args.storage_option),
                           in_memory=True, refresh_seconds=args.refresh_seconds)  # fmt: skip


def _app(index, options: ModelOptions, token: str | None, hosts: list[str]):
    """The app over `index` with the model `options` name (loaded here)."""
    from ..serve import SearchService, create_app

    model = options.load(text_later=True)
    tokenizer = options.load_tokenizer(model) if model.is_multimodal else None
    # Uploads are sampled as the index's clips were, unless --num-frames/--size say.
    service = SearchService(index, model, tokenizer, num_frames=options.num_frames,
                            size=options.size, encoder=options.encoder(model))  # fmt: skip
    return create_app(service, token=token, allowed_hosts=hosts)


def _worker_app(args: argparse.Namespace, token: str | None, hosts: list[str], number: int):
    """A `--workers` process's app: the index and the model of its own (`number` is the
    worker's, 1 to N)."""
    from ..native_logs import held_while_importing

    with held_while_importing("keras", "tensorflow"):  # their load-time lines, as in main()
        index = _index(args)
        return _app(index, index_options(ModelOptions.from_args(args), index.meta), token,
                    hosts)  # fmt: skip


def serve(args: argparse.Namespace) -> dict:
    index = _index(args)
    options = index_options(ModelOptions.from_args(args), index.meta)
    token = args.token or os.environ.get(SERVE_TOKEN_ENV) or None
    # Keras comes with the service: after the index is found, which answers at once.
    from ..serve import ServeError, bind, check_exposure, run, url

    if token is None and any(h.strip() in ("*", "0.0.0.0", "[::]") for h in args.allowed_host):
        # Any Host name answered: a page on a rebound name could read the index.
        raise UsageError("--allowed-host '*' answers every Host name: give a --token too")
    try:  # host, port and token before the model loads: a mistake fails at once
        check_exposure(args.host, token)
        if args.workers > 1:
            from ..serve.replicas import bind_shared

            sock = bind_shared(args.host, args.port)  # the workers' own sockets join its port
        else:
            sock = bind(args.host, args.port)
    except ServeError as err:
        raise UsageError(str(err)) from err
    hosts = [args.host, *args.allowed_host]
    serving = (f"videoprism: serving {args.index} ({len(index)} clips) on {url(sock)}"
               + (f" with {args.workers} workers" if args.workers > 1 else "")
               + (" (token required)" if token else ""))  # fmt: skip
    with sock:
        if args.workers > 1:
            from ..serve.replicas import run_replicas

            # Each worker loads the index and the model itself, in a process of its own
            # (spawned: a partial of a module-level function pickles by its name).
            build = functools.partial(_worker_app, args, token, hosts)
            run_replicas(build, sock, args.workers, on_ready=lambda _: print(serving, flush=True))
            print("videoprism: stopped", file=sys.stderr)  # Ctrl-C or SIGTERM: not an error
            return {"index": args.index}
        app = _app(index, options, token, hosts)
        print(serving, flush=True)
        try:
            run(app, sock, log_level="warning")
        except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an error
            print("videoprism: stopped", file=sys.stderr)
    return {"index": args.index}
