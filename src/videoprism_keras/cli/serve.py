"""`videoprism serve`: a search service and web page over an index."""

from __future__ import annotations

import argparse
import os
import sys

from ..constants import (
    INDEX_REFRESH_SECONDS,
    MODEL_DTYPES,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_TOKEN_ENV,
)
from .inputs import storage_options
from .models import ModelOptions, index_options
from .parser import UsageError, add_command, add_sampling_options, add_storage_option, positive


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
    p.add_argument("--dtype", choices=MODEL_DTYPES, help="as for search (default: the index's)")
    tokenizer_help = "SentencePiece model (default: the index's, else the preset's own)"
    p.add_argument("--tokenizer", help=tokenizer_help)
    add_sampling_options(p)  # of uploaded query videos; the index's by default


def serve(args: argparse.Namespace) -> dict:
    from ..apps import VideoIndex

    # Searched many times: past the vector index's threshold, its candidates are re-ranked
    # against vectors held in memory, not read back from the table.
    index = VideoIndex.load(args.index, storage_options=storage_options(args.storage_option),
                            in_memory=True, refresh_seconds=args.refresh_seconds)  # fmt: skip
    options = index_options(ModelOptions.from_args(args), index.meta)
    token = args.token or os.environ.get(SERVE_TOKEN_ENV) or None
    # Keras comes with the service: after the index is found, which answers at once.
    from ..serve import SearchService, ServeError, bind, check_exposure, create_app, run, url

    if token is None and any(h.strip() in ("*", "0.0.0.0", "[::]") for h in args.allowed_host):
        # Any Host name answered: a page on a rebound name could read the index.
        raise UsageError("--allowed-host '*' answers every Host name: give a --token too")
    try:  # host, port and token before the model loads: a mistake fails at once
        check_exposure(args.host, token)
        sock = bind(args.host, args.port)
    except ServeError as err:
        raise UsageError(str(err)) from err
    hosts = [args.host, *args.allowed_host]
    with sock:
        model = options.load(text_later=True)
        tokenizer = options.load_tokenizer(model) if model.is_multimodal else None
        # Uploads are sampled as the index's clips were, unless --num-frames/--size say.
        service = SearchService(index, model, tokenizer, num_frames=options.num_frames,
                                size=options.size)  # fmt: skip
        app = create_app(service, token=token, allowed_hosts=hosts)
        print(f"videoprism: serving {args.index} ({len(index)} clips) on {url(sock)}"
              + (" (token required)" if token else ""), flush=True)  # fmt: skip
        try:
            run(app, sock, log_level="warning")
        except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an error
            print("videoprism: stopped", file=sys.stderr)
    return {"index": args.index}
