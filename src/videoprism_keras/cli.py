"""`videoprism`: embed, classify, index and search videos from the shell.

    videoprism info
    videoprism embed clip.mp4 other.mp4 -o embeddings.npz
    videoprism classify clip.mp4 --labels "drumming,cooking,dancing" --plot labels.png
    videoprism index videos/ -o my_index --clip-seconds 10
    videoprism search my_index --text "a person playing drums" --plot hits.png
    videoprism export --format onnx -o videoprism.onnx --frames 16 --size 288
    videoprism serve my_index --port 8000

Errors are one line on stderr and a non-zero exit code.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

from .constants import (
    DEFAULT_SOFT_CAP,
    MODEL_DTYPES,
    PROMPT_TEMPLATE,
    SERVE_HOST,
    SERVE_PORT,
    SERVE_TOKEN_ENV,  # fmt: skip
    TEMPERATURE,
)
from .native_logs import held_stderr

DEFAULT_PRESET = "videoprism_lvt_public_v1_base"
BACKENDS = ("jax", "torch", "tensorflow")
ANN_THRESHOLD = 200_000  # apps.index.ANN_THRESHOLD, without importing the apps for --help
# What an index records of its sampling, by CLI flag.
INDEX_FLAGS = {"frames": "num_frames", "size": "size", "clip_seconds": "clip_seconds",
               "stride_seconds": "stride_seconds"}  # fmt: skip


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (and exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _parser():
    parser = _Parser(
        prog="videoprism", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    backend_help = "Keras backend (before or after the command)"
    parser.add_argument("--backend", choices=BACKENDS, help=backend_help)
    # Every command takes --backend too; SUPPRESS keeps a top-level one when it is not given.
    common = _Parser(add_help=False)
    common.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                        help=backend_help)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help):
        return sub.add_parser(name, help=help, parents=[common])

    def model_options(p, text=True):
        preset_help = "preset name, directory, hf://, kaggle:// or official .npz (default "
        preset_help += f"{DEFAULT_PRESET}; for an index, the one it was built with)"
        p.add_argument("--preset", help=preset_help)
        cap_help = f"attention logit cap, for .npz checkpoints (default {DEFAULT_SOFT_CAP:g})"
        p.add_argument("--soft-cap", type=_positive(float), help=cap_help)
        dtype_help = ("compute dtype (default float32, the official numerics; for an index, the "
                      "one it was built with). bfloat16 is an approximate mode, faster only "
                      "on some CPUs: speed and error in benchmarks/README.md")  # fmt: skip
        p.add_argument("--dtype", choices=MODEL_DTYPES, help=dtype_help)
        if text:
            p.add_argument("--tokenizer", help="SentencePiece model (default: the preset's own)")
        p.add_argument("--batch-size", type=_positive(int), default=4)
        p.add_argument(
            "--frames", type=_positive(int), help="frames per clip (default: the model's)"
        )
        p.add_argument(
            "--size", type=_positive(int), help="frame side in pixels (default: the model's)"
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--no-progress", action="store_true")
        strict_help = "fail if any input fails (default: skip it, say so, go on)"
        p.add_argument("--strict", action="store_true", help=strict_help)

    def storage_option(p):
        storage_help = "LanceDB storage option for an object-store index (repeat)"
        p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                       help=storage_help)  # fmt: skip

    def ray_options(p):
        ray_help = ("run on Ray Data: a new local Ray instance, or the cluster at ADDRESS "
                    "(host:port of `ray start --head`, or auto); SOURCES may then also be "
                    "globs and .parquet/.csv lists (a 'path' column of paths or URIs)")  # fmt: skip
        p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", help=ray_help)
        p.add_argument("--workers", type=_positive(int),
                       help="with --ray: model actors (default one per GPU, or 1)")  # fmt: skip
        p.add_argument("--num-gpus-per-worker", type=_positive(float),
                       help="with --ray: GPUs each model actor holds (default 0: CPU)")  # fmt: skip

    command("info", "presets, cache and backend").add_argument("--json", action="store_true")
    p = command("embed", "videos → embeddings file (.npy + .json, .npz or .parquet)")
    p.add_argument("videos", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--kind", choices=["video", "frames", "features"], default="video")
    p.add_argument("--clip-seconds", type=_positive(float))
    p.add_argument("--stride-seconds", type=_positive(float))
    resume_help = "continue an interrupted run into the same -o (or add videos to a finished one)"
    p.add_argument("--resume", action="store_true", help=resume_help)
    ray_options(p)
    model_options(p, text=False)
    p = command("classify", "zero-shot with free-text labels, or a trained head (--head)")
    p.add_argument("videos", nargs="+")
    p.add_argument("--labels", help="comma-separated labels")
    p.add_argument("--labels-file", help="one label per line")
    p.add_argument("--head", help="a classifier trained by `videoprism train` (.keras)")
    p.add_argument("--template", default=PROMPT_TEMPLATE, help="prompt; {} is the label")
    p.add_argument("--temperature", type=_positive(float), default=TEMPERATURE)
    p.add_argument("--top-k", type=_positive(int), default=5)
    p.add_argument("--plot", help="write a picture of the results (PNG)")
    model_options(p)
    p = command("index", "build or extend a searchable video index")
    p.add_argument("sources", nargs="+", help="video files or folders")
    output_help = "index folder or LanceDB URI (s3://…); extended if it exists"
    p.add_argument("-o", "--output", required=True, help=output_help)
    p.add_argument("--clip-seconds", type=_positive(float), help="index windows of long videos")
    p.add_argument("--stride-seconds", type=_positive(float))
    ann_help = f"index size from which a vector index is built (default {ANN_THRESHOLD:,})"
    p.add_argument("--ann-threshold", type=_positive(int), help=ann_help)
    ray_options(p)
    storage_option(p)
    model_options(p, text=False)
    p = command("train", "train a classifier head on labelled clips (DIR/<label>/*)")
    p.add_argument("data", help="a folder with one sub-folder of videos per label")
    p.add_argument("-o", "--output", required=True, help="the trained classifier (.keras)")
    p.add_argument("--classifier", help="start from an official classifier checkpoint (.npz)")
    p.add_argument("--epochs", type=_positive(int), default=20)
    p.add_argument("--learning-rate", type=_positive(float), default=1e-3)
    tune = p.add_mutually_exclusive_group()
    tune.add_argument("--lora-rank", type=_positive(int), help="also train backbone LoRA adapters")
    tune.add_argument("--full", action="store_true", help="fine-tune the whole backbone too")
    p.add_argument("--remat", action="store_true", help="with --lora-rank/--full: less memory")
    model_options(p, text=False)
    p = command("finetune", "contrastive fine-tuning of an LvT model on (video, caption) pairs")
    p.add_argument("pairs", help="CSV or parquet with columns path,caption[,start,end]")
    p.add_argument("-o", "--output", required=True, help="folder for checkpoints and results")
    p.add_argument("--eval", help="held-out pairs: recall@1/5/10 before and after")
    p.add_argument("--epochs", type=_positive(int), default=5)
    p.add_argument("--learning-rate", type=_positive(float), default=1e-5)
    p.add_argument("--lora-rank", type=_positive(int), help="train LoRA adapters of this rank only")
    p.add_argument("--freeze", choices=["video", "text"], help="keep this tower fixed")
    p.add_argument("--remat", action="store_true", help="recompute activations: less memory")
    p.add_argument("--resume", action="store_true", help="continue from -o's last checkpoint")
    model_options(p)
    p = command("search", "search an index by text or by example video")
    p.add_argument("index")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text")
    query.add_argument("--video")
    p.add_argument("--top-k", type=_positive(int), default=5)
    where_help = "SQL filter over path, start_s, end_s, duration_s, size_bytes"
    p.add_argument("--where", help=where_help + ' (e.g. "duration_s > 60")')
    p.add_argument("--under", help="only videos in this folder (or below)")
    p.add_argument("--per-video", action="store_true", help="the best clip of each video")
    p.add_argument("--exact", action="store_true", help="exact search even past --ann-threshold")
    p.add_argument("--plot", help="write the top hits as frame strips (PNG)")
    storage_option(p)
    model_options(p)
    p = command("export", "the model as a SavedModel, ONNX or LiteRT file, for serving")
    p.add_argument("--format", choices=["tf_saved_model", "onnx", "litert"], required=True)
    p.add_argument("-o", "--output", required=True,
                   help="a directory (tf_saved_model), a .onnx or a .tflite file")  # fmt: skip
    p.add_argument("--preset", help=f"as for the other commands (default {DEFAULT_PRESET})")
    p.add_argument("--soft-cap", type=float, help="attention logit cap, for .npz checkpoints")
    p.add_argument("--frames", type=_positive(int), help="frames per clip (default: the model's)")
    p.add_argument(
        "--size", type=_positive(int), help="frame side in pixels (default: the model's)"
    )
    p.add_argument("--text-length", type=_positive(int), default=64, help="tokens per text")
    p.add_argument("--batch-size", type=_positive(int),
                   help="a fixed batch (default: any, where the format allows it)")  # fmt: skip
    p.add_argument("--quantize", choices=["int8", "int4", "float8"],
                   help="quantize the projections first")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = command("serve", "a search service and web page over an index")
    p.add_argument("index")
    host_help = f"address to listen on (default {SERVE_HOST}; any other needs --token)"
    p.add_argument("--host", default=SERVE_HOST, help=host_help)
    p.add_argument("--port", type=int, default=SERVE_PORT, help="0: any free port")
    p.add_argument("--token", default=os.environ.get(SERVE_TOKEN_ENV),
                   help=f"bearer token the API wants (default ${SERVE_TOKEN_ENV})")  # fmt: skip
    storage_option(p)
    p.add_argument("--preset", help="as for search (default: the one the index was built with)")
    p.add_argument("--soft-cap", type=_positive(float), help="as for search")
    p.add_argument("--dtype", choices=MODEL_DTYPES, help="as for search (default: the index's)")
    p.add_argument("--tokenizer", help="SentencePiece model (default: the preset's own)")
    return parser


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # usage error (one line, already printed) or --help
        return done.code or 0
    warnings.showwarning = _show_warning
    try:
        _use_backend(args.backend)
        result = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("videoprism: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line, not a traceback
        message = getattr(err, "cli_message", None) or str(err)  # said with CLI flags
        message = message.splitlines()[0] if message else type(err).__name__
        print(f"videoprism: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    return 0


_python_show_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our warnings ("videoprism: …") as the one line they are, without a source line."""
    if str(message).startswith("videoprism:"):
        print(message, file=file or sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


def _use_backend(backend):
    """Keras reads KERAS_BACKEND once, when first imported: set it, then import Keras
    (quietly: TensorFlow's libraries log to the terminal as they load)."""
    if backend and "keras" in sys.modules:  # main() called in a process with Keras loaded
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise UsageError(f"--backend {backend}: Keras is already loaded with {current}")
    if backend:
        os.environ["KERAS_BACKEND"] = backend
    from . import _backend

    _backend.choose_default_backend()
    with quiet_native_logs():
        import keras  # noqa: F401


@contextlib.contextmanager
def quiet_native_logs():
    """TensorFlow's native INFO lines held back meanwhile (`native_logs.held_stderr`):
    Keras loads TensorFlow when it saves a file, even on JAX."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # what they log once loaded
    with held_stderr():
        yield


# ------------------------------------------------------------------ helpers
def _soft_cap(args) -> float:
    """The attention cap for an official .npz (which does not store it)."""
    return DEFAULT_SOFT_CAP if args.soft_cap is None else args.soft_cap


def _model(args, need_text=False):
    from . import VideoPrismBackbone

    preset = str(args.preset or DEFAULT_PRESET)
    overrides = {} if args.dtype in (None, "float32") else {"dtype": args.dtype}
    if preset.endswith(".npz"):
        overrides["attention_logit_soft_cap"] = _soft_cap(args)
    model = VideoPrismBackbone.from_preset(preset, **overrides)
    if need_text and not model.is_multimodal:
        raise UsageError(f"{preset} is a video-only model; text needs an LvT preset")
    return model


def _tokenizer(args, model):
    from .tokenizer import VideoPrismTokenizer

    if args.tokenizer:
        return VideoPrismTokenizer(args.tokenizer)
    if getattr(model, "tokenizer_file", None):
        return VideoPrismTokenizer(model.tokenizer_file)
    preset = str(args.preset or DEFAULT_PRESET)
    if preset.endswith(".npz"):
        raise UsageError(f"{preset} carries no tokenizer: pass --tokenizer SPM_MODEL")
    return VideoPrismTokenizer.from_preset(preset)


def _sampling(args, model):
    size = (args.size, args.size) if args.size else tuple(model.frame_shape[:2])
    return args.frames or model.num_frames, size


def _video_files(sources):
    from .apps import find_videos

    try:
        return find_videos(sources)
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err


def _preset_id(preset) -> str:
    """A preset as an index records it: local paths absolute, names and URLs as they are."""
    text = os.fspath(preset)
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def _index_model(args, meta, writing=False):
    """An index holds one model's embedding space: its preset (and soft cap) are the
    defaults, another one is an error. Its sampling (frames, size, clip and stride
    seconds) is the default too; `index` refuses another (one index, one sampling), and
    another dtype, which `search` may use (it approximates the same embedding space)."""
    stored = meta.get("preset")
    if args.preset is None:
        args.preset = stored or DEFAULT_PRESET
    elif stored is not None and _preset_id(args.preset) != _preset_id(stored):
        raise UsageError(f"the index holds embeddings of --preset {stored}, not {args.preset}: "
                         "leave --preset out to use the index's")  # fmt: skip
    stored_cap = meta.get("soft_cap")
    if args.soft_cap is None:
        args.soft_cap = stored_cap
    elif stored_cap is not None and args.soft_cap != stored_cap:
        raise UsageError(
            f"the index was built with --soft-cap {stored_cap:g}, not {args.soft_cap:g}"
        )
    if writing and args.dtype and meta.get("dtype") and args.dtype != meta["dtype"]:
        raise UsageError(f"the index was built with --dtype {meta['dtype']}, not "
                         f"{args.dtype}: leave --dtype out to use the index's, or index into "
                         "another -o")  # fmt: skip
    args.dtype = args.dtype or meta.get("dtype")
    for attribute, key in INDEX_FLAGS.items():
        if not hasattr(args, attribute):
            continue
        given, held = getattr(args, attribute), meta.get(key)
        flag = "--" + attribute.replace("_", "-")
        if writing and key in meta and given is not None and given != held:
            shown = held if held is not None else "(not given: whole videos)"
            raise UsageError(f"the index was built with {flag} {shown}, not {given}: "
                             f"leave {flag} out to use the index's, or index into another "
                             "-o")  # fmt: skip
        if getattr(args, attribute) is None:
            setattr(args, attribute, held)


def _storage_options(args) -> dict | None:
    options = {}
    for item in args.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option takes KEY=VALUE. Received: {item!r}")
        options[key] = value
    return options or None


def _writable(output):
    """A local index folder that cannot be written fails now, not after the model loads."""
    if "://" in str(output):
        return
    path = Path(output).absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {output} is a file, not an index folder: give a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"-o {output}: cannot write in {existing} (permission denied or not a "
                         "folder): choose another -o, or make it writable")  # fmt: skip


def _embed(args, model, videos, clip_seconds=None, stride_seconds=None, kind="video"):
    from .apps import embed_videos

    frames, size = _sampling(args, model)
    return embed_videos(model, videos, kind=kind, batch_size=args.batch_size, num_frames=frames,
                        size=size, clip_seconds=clip_seconds, stride_seconds=stride_seconds,
                        progress=not args.no_progress, on_error="skip")  # fmt: skip


def _check_output(path, suffixes, flag):
    """An output file we can write, checked before any model work starts."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a {' or '.join(suffixes)} file")
    if out.is_dir():
        raise UsageError(f"{flag} {path} is a directory; expected a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: folder {parent} is not writable")


def _report_failures(args, failures, embedded: int, summary=True):
    """One line per input that failed, then a count; with --strict any failure is an error."""
    for path, error in failures:
        print(f"videoprism: skipped {path}: {error}", file=sys.stderr)
    if not failures or not summary:
        return
    summary = f"{len(failures)} input(s) failed, {embedded} item(s) embedded"
    if getattr(args, "strict", False):
        raise RuntimeError(f"{summary} (--strict makes any failure an error)")
    print(f"videoprism: {summary}", file=sys.stderr)


def _sources(args, sources) -> list[str]:
    """`index`/`embed` sources, checked before the model loads; with --ray also globs and
    .parquet/.csv lists, and Ray's address must answer."""
    if not args.ray:
        for flag in ("workers", "num_gpus_per_worker"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} is an option of --ray: add --ray")
        return _video_files(sources)
    from .apps import ray_pipeline

    if args.ray != "local" and os.path.exists(args.ray):  # `--ray videos/ more/`: a source
        raise UsageError(f"--ray takes a Ray address, not {args.ray!r}: put --ray after the "
                         "sources, or write --ray=ADDRESS")  # fmt: skip
    try:
        listed = ray_pipeline.list_sources(sources)
        local = [s for s in listed if "://" not in s]
        if local:
            _video_files(local)
        ray_pipeline.check_address(None if args.ray == "local" else args.ray)
    except ray_pipeline.RayUnavailable as err:
        raise UsageError(f"--ray {args.ray}: {err}") from err
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    return listed


def _on_ray(args, model, sources, target):
    """`index`/`embed` on Ray: into a VideoIndex (→ what `add_videos` returns) or an
    EmbeddingWriter (→ the failures)."""
    from .apps import ray_pipeline as rp
    from .apps.embed_writer import EmbeddingWriter

    overrides = {} if args.dtype in (None, "float32") else {"dtype": args.dtype}
    if str(args.preset or DEFAULT_PRESET).endswith(".npz"):
        overrides["attention_logit_soft_cap"] = _soft_cap(args)
    loader = rp.PresetLoader(_preset_id(args.preset or DEFAULT_PRESET), overrides)
    options = rp.RayOptions(workers=args.workers, num_gpus_per_worker=args.num_gpus_per_worker
                            or 0.0, batch_size=args.batch_size, progress=not args.no_progress,
                            address=None if args.ray == "local" else args.ray)  # fmt: skip
    frames, size = _sampling(args, model)
    common = dict(num_frames=frames, size=size, load_model=loader, options=options)
    try:
        if isinstance(target, EmbeddingWriter):
            return rp.embed_on_ray(model, sources, target, args.kind, args.clip_seconds,
                                   args.stride_seconds, **common)[1]  # fmt: skip
        return rp.index_on_ray(model, sources, target, args.clip_seconds, args.stride_seconds,
                               **common)  # fmt: skip
    except rp.RayUnavailable as err:
        raise UsageError(f"--ray {args.ray}: {err}") from err


# ----------------------------------------------------------------- commands
def cmd_info(args):
    import keras

    from . import __version__
    from .hub import cache_root
    from .presets import PRESETS

    cache = cache_root()
    cached = sorted(p.name for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []
    info = {"videoprism_keras": __version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "cache": str(cache), "cached": cached,
            "presets": PRESETS}  # fmt: skip
    if not args.json:
        print(
            f"videoprism-keras {__version__}, Keras {keras.__version__}, backend {info['backend']}"
        )
        print(f"cache: {cache} ({', '.join(cached) or 'empty'})\n")
        for name, meta in PRESETS.items():
            mark = "*" if name in cached else " "
            size = f"{meta['params'] / 1e6:5.0f}M  {meta['num_frames']:2d} frames"
            print(f"{mark} {name:32s} {size}  {meta['description']}")
    return info


def cmd_embed(args):
    from .apps.embed_writer import SUFFIXES, EmbeddingWriter
    from .apps.embedding import embed_batches

    _check_output(args.output, SUFFIXES, "-o")  # before hours of work, not after
    files = _sources(args, args.videos)  # before the model loads: a typo fails at once
    model = _model(args)
    frames, size = _sampling(args, model)
    settings = {"--kind": args.kind, "--preset": _preset_id(args.preset or DEFAULT_PRESET),
                "--frames": frames, "--size": list(size), "--clip-seconds": args.clip_seconds,
                "--stride-seconds": args.stride_seconds,
                "--dtype": args.dtype or "float32"}  # fmt: skip
    writer = EmbeddingWriter(args.output, settings, resume=args.resume)
    failures: list = []
    if args.ray:
        failures = _on_ray(args, model, files, writer)
    else:
        for batch in embed_batches(model, files, kind=args.kind, batch_size=args.batch_size,
                                   num_frames=frames, size=size, clip_seconds=args.clip_seconds,
                                   stride_seconds=args.stride_seconds,
                                   progress=not args.no_progress, on_error="skip",
                                   exclude=writer.done, failures=failures):  # fmt: skip
            writer.write(batch)
    try:
        path, shape = writer.finish(args.kind)
    except ValueError as err:  # nothing at all was embedded
        if not failures:
            raise
        from .apps.embedding import nothing_embedded

        _report_failures(args, failures[1:], embedded=0, summary=False)
        raise nothing_embedded(failures) from err
    _report_failures(args, failures, embedded=shape[0])
    if not args.json:
        resumed = f" ({writer.resumed} from the earlier run)" if writer.resumed else ""
        print(f"{shape[0]} {args.kind} embeddings {tuple(shape)}{resumed} → {path}")
    return {"output": str(path), "shape": list(shape), "failures": failures,
            "resumed": writer.resumed}  # fmt: skip


def cmd_classify(args):
    from .apps import ZeroShotClassifier

    if args.plot:
        _check_output(args.plot, (".png",), "--plot")
    if args.head:
        return _classify_with_head(args)
    if bool(args.labels) == bool(args.labels_file):
        raise UsageError(
            "give the labels with --labels 'a,b,c' or --labels-file FILE, or a trained "
            "classifier with --head FILE.keras"
        )
    text = args.labels if args.labels else Path(args.labels_file).read_text()
    labels = [label.strip() for label in text.replace("\n", ",").split(",") if label.strip()]
    if "{}" not in args.template:
        raise UsageError(f"--template needs '{{}}' where the label goes; got {args.template!r}")
    files = _video_files(args.videos)
    model = _model(args, need_text=True)
    classifier = ZeroShotClassifier(
        model, _tokenizer(args, model), labels, args.template, args.temperature
    )
    embeddings = _embed(args, model, files)
    _report_failures(args, embeddings.failures, embedded=len(embeddings))
    results = classifier.classify(embeddings.vectors, top_k=args.top_k)
    out = _top_labels(args, embeddings.paths, results)
    if args.plot:
        from .plots import plot_classification

        probabilities = classifier.probabilities(embeddings.vectors)
        plot_classification(embeddings.paths, probabilities, labels, args.plot, args.top_k)
    return out


def _top_labels(args, paths, results) -> list:
    """Each video's top (label, probability) pairs: printed, and as the JSON result."""
    out = [{"video": p, "top": [{"label": lab, "probability": prob} for lab, prob in r]}
           for p, r in zip(paths, results, strict=True)]  # fmt: skip
    if not args.json:
        for item in out:
            print(item["video"])
            for hit in item["top"]:
                print(f"  {hit['probability']:7.2%}  {hit['label']}")
    return out


def _classify_with_head(args):
    """`classify --head`: the labels and the model are the trained classifier's."""
    import keras

    if args.labels or args.labels_file or args.preset:
        raise UsageError("--head brings its own labels and backbone: leave out --labels, "
                         "--labels-file and --preset")  # fmt: skip
    head = Path(args.head)
    if head.suffix != ".keras" or not head.is_file():
        raise UsageError(f"--head {args.head}: expected a .keras file written by videoprism train")
    files = _video_files(args.videos)
    try:
        with quiet_native_logs():
            model = keras.saving.load_model(head)
    except Exception as err:  # Keras raises many types for a damaged or foreign file
        raise UsageError(f"--head {args.head} is not a readable classifier: {err}") from err
    if not hasattr(model, "predict_labels"):
        raise UsageError(f"--head {args.head} holds a {type(model).__name__}, not a classifier")
    embeddings = _embed(args, model.backbone, files, kind="features")
    _report_failures(args, embeddings.failures, embedded=len(embeddings))
    results = model.predict_labels({"features": embeddings.vectors}, top_k=args.top_k, verbose=0)
    out = _top_labels(args, embeddings.paths, results)
    return out


def cmd_index(args):
    from .apps import VideoIndex

    options = _storage_options(args)
    _writable(args.output)
    threshold = {"ann_threshold": args.ann_threshold} if args.ann_threshold else {}
    index = VideoIndex(args.output, storage_options=options, **threshold)
    _index_model(args, index.meta, writing=True)
    files = _sources(args, args.sources)
    model = _model(args)
    frames, size = _sampling(args, model)
    if not len(index):
        meta = {"preset": _preset_id(args.preset)}
        if str(args.preset).endswith(".npz"):
            meta["soft_cap"] = _soft_cap(args)
        index = VideoIndex(args.output, storage_options=options, meta=meta, **threshold)
    if args.ray:
        added = _on_ray(args, model, files, index)
    else:
        added = index.add_videos(model, files, args.clip_seconds, args.stride_seconds,
                                 batch_size=args.batch_size, num_frames=frames, size=size,
                                 progress=not args.no_progress, on_error="skip")  # fmt: skip
    _report_failures(args, added.failures, embedded=len(added))
    size = len(index)
    if not args.json:
        skipped = f" (skipped {added.skipped} already indexed)" if added.skipped else ""
        print(f"indexed {len(added)} items{skipped}; {args.output} now holds {size}")
    return {"index": str(args.output), "added": len(added), "skipped": added.skipped,
            "size": size}  # fmt: skip


def cmd_search(args):
    from .apps import VideoIndex

    if args.text is not None and not args.text.strip():
        raise UsageError("--text is empty: give the words to search for")
    if args.video is not None and Path(args.video).is_dir():
        raise UsageError(f"--video {args.video} is a folder: give one video file as the query")
    if args.plot:
        _check_output(args.plot, (".png",), "--plot")
    index = VideoIndex.load(args.index, storage_options=_storage_options(args))
    _index_model(args, index.meta)
    if args.under is not None and "://" not in args.index and not Path(args.under).is_dir():
        raise UsageError(f"--under {args.under}: no such folder")
    model = _model(args, need_text=args.text is not None)
    if args.text is not None:
        from .runtime import Encoder

        ids, mask = _tokenizer(args, model).tokenize_texts([args.text])
        query = Encoder(model).text(ids, mask)
    else:
        query = _embed(args, model, _video_files([args.video])).vectors
    try:
        hits = index.search(query, top_k=args.top_k, where=args.where, under=args.under,
                            per_video=args.per_video, exact=args.exact or None)[0]  # fmt: skip
    except ValueError as err:
        if args.where and "filter" in str(err):
            raise UsageError(f"--where {args.where!r}: {err}") from err
        raise
    if not args.json:
        print(f"top {len(hits)} of {len(index)} for {args.text or args.video!r}")
        for hit in hits:
            when = "" if math.isnan(hit.start) else f" [{hit.start:.1f}s-{hit.end:.1f}s]"
            print(f"  {hit.score:6.3f}  {hit.path}{when}")
    if args.plot:
        from .plots import plot_hits

        plot_hits(args.text or Path(args.video).name, hits, args.plot)
    return [h.as_dict() for h in hits]


def cmd_train(args):
    import keras
    import numpy as np

    from .classifier import VideoPrismVideoClassifier

    classes = (
        sorted(p for p in Path(args.data).iterdir() if p.is_dir())
        if Path(args.data).is_dir()
        else []
    )
    if len(classes) < 2:
        raise UsageError(f"{args.data} needs one sub-folder of videos per label, at least two")
    labels = [c.name for c in classes]
    _check_output(args.output, (".keras",), "-o")  # before hours of work, not after
    files = [(f, i) for i, c in enumerate(classes) for f in _video_files([c])]
    if args.classifier:
        model = VideoPrismVideoClassifier.from_flax_checkpoint(args.classifier, _soft_cap(args))
        if model.num_classes != len(labels):
            raise UsageError(
                f"{args.classifier} has {model.num_classes} classes, {args.data} {len(labels)}"
            )
        model.labels = labels
    else:
        model = VideoPrismVideoClassifier(_model(args), len(labels), labels=labels)
    if args.lora_rank or args.full:  # the backbone trains: pixels every epoch
        model = finetune_classifier(model, args.lora_rank, args.remat)
        inputs, paths = decode_clips(args, model.backbone, [f for f, _ in files])
    else:  # the backbone is frozen: run it once per clip, then train on the cached features
        embeddings = _embed(args, model.backbone, [f for f, _ in files], kind="features")
        _report_failures(args, embeddings.failures, embedded=len(embeddings))
        inputs, paths = {"features": embeddings.vectors}, embeddings.paths
    targets = np.array([dict(files)[p] for p in paths])
    empty = [label for i, label in enumerate(labels) if not (targets == i).any()]
    if empty:
        raise RuntimeError(f"no readable clip for label(s) {', '.join(empty)}: nothing to learn "
                           "them from (see the skipped files above)")  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    history = model.fit(inputs, targets, epochs=args.epochs, batch_size=args.batch_size,
                        verbose=0)  # fmt: skip
    with quiet_native_logs():
        model.save(args.output)
    losses = [float(x) for x in history.history["loss"]]
    if not args.json:
        loss = f"loss {losses[0]:.3f} → {losses[-1]:.3f}"
        print(f"trained on {len(targets)} clips of {len(labels)} labels: {loss}")
        print(f"saved {args.output}")
    return {"labels": labels, "losses": losses, "output": args.output}


def cmd_finetune(args):
    from . import finetune

    pairs = finetune.read_pairs(args.pairs)  # every file checked before any work
    held_out = finetune.read_pairs(args.eval) if args.eval else None
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UsageError(f"-o {args.output} exists and is not a folder")
    done, _ = finetune.resume_state(args.output)
    if done and not args.resume:
        raise UsageError(f"-o {args.output} holds a run ({done} epochs): pass --resume or a new -o")
    model = _model(args, need_text=True)
    tokenizer = _tokenizer(args, model)
    if args.remat:
        rebuilt = type(model).from_config({**model.get_config(), "remat": True})
        rebuilt.set_weights(model.get_weights())
        model = rebuilt
    with quiet_native_logs():  # TensorFlow's load-time lines when Keras saves (stdout stays)
        summary = finetune.run(
            model, tokenizer, pairs, args.output, eval_pairs=held_out,
            epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
            num_frames=args.frames, size=args.size, lora_rank=args.lora_rank,
            freeze=args.freeze, resume=args.resume,
            verbose=0 if args.no_progress or args.json else 1,
        )  # fmt: skip
    if not args.json:
        losses = summary["losses"]
        print(
            f"trained {len(pairs)} pairs, epochs {summary['resumed_at']}→{args.epochs}: "
            f"loss {losses[0]:.3f} → {losses[-1]:.3f}"
            if losses
            else "nothing to train"
        )
        for when in ("before", "after"):
            if summary[f"recall_{when}"]:
                print(
                    f"recall {when}: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in summary[f"recall_{when}"].items())
                )
        print(f"saved {args.output}")
    return summary


def finetune_classifier(model, lora_rank, remat):
    """`train --lora-rank/--full`: the classifier rebuilt around a trainable backbone."""
    backbone = model.backbone
    if remat:
        rebuilt = type(backbone).from_config({**backbone.get_config(), "remat": True})
        rebuilt.set_weights(backbone.get_weights())
        backbone = rebuilt
    tuned = type(model)(backbone, model.num_classes, labels=model.labels,
                        freeze_backbone=False, lora_rank=lora_rank)  # fmt: skip
    for source, target in ((model.pooler, tuned.pooler), (model.head, tuned.head)):
        target.set_weights(source.get_weights())
    return tuned


def decode_clips(args, backbone, files):
    """Every clip decoded at the model's sampling (or --frames/--size); unreadable ones
    skipped and reported as `embed` reports them."""
    import numpy as np

    from .video import VideoDecodeError, load_video

    frames, size = _sampling(args, backbone)
    clips, paths, failures = [], [], []
    for path in files:
        try:
            clips.append(load_video(path, frames, size))
            paths.append(path)
        except VideoDecodeError as err:
            failures.append((path, str(err)))
    _report_failures(args, failures, embedded=len(clips))
    if not clips:
        raise RuntimeError("no readable clip to train on (see the skipped files above)")
    return {"pixel_values": np.stack(clips)}, paths


def cmd_export(args):
    args.dtype = None
    model = _model(args)
    if args.quantize:
        model.quantize(args.quantize)
    shape = dict(num_frames=args.frames, resolution=args.size, text_length=args.text_length)
    model.export(args.output, args.format, False, batch_size=args.batch_size, **shape)
    if not args.json:
        print(f"exported {args.preset or DEFAULT_PRESET} ({args.format}) → {args.output}")
    return {"output": str(args.output), "format": args.format}


def cmd_serve(args):
    from .apps import VideoIndex
    from .serve import SearchService, ServeError, bind, check_exposure, create_app, run, url

    # Searched many times: past the vector index's threshold, its candidates are re-ranked
    # against vectors held in memory, not read back from the table.
    index = VideoIndex.load(args.index, storage_options=_storage_options(args), in_memory=True)
    _index_model(args, index.meta)
    try:  # host, port and token before the model loads: a mistake fails at once
        args.token = args.token or None
        check_exposure(args.host, args.token)
        sock = bind(args.host, args.port)
    except ServeError as err:
        raise UsageError(str(err)) from err
    with sock:
        model = _model(args)
        tokenizer = _tokenizer(args, model) if model.is_multimodal else None
        service = SearchService(index, model, tokenizer)  # uploads sampled as the index's clips
        app = create_app(service, token=args.token)
        print(f"videoprism: serving {args.index} ({len(index)} clips) on {url(sock)}"
              + (" (token required)" if args.token else ""), flush=True)  # fmt: skip
        try:
            run(app, sock, log_level="warning")
        except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an error
            print("videoprism: stopped", file=sys.stderr)
    return {"index": args.index}


COMMANDS = {"export": cmd_export, "info": cmd_info, "embed": cmd_embed, "classify": cmd_classify,
            "index": cmd_index, "search": cmd_search, "train": cmd_train,
            "serve": cmd_serve, "finetune": cmd_finetune}  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
