"""`videoprism`: embed, classify, index and search videos from the shell.

    videoprism info
    videoprism embed clip.mp4 other.mp4 -o embeddings.npz
    videoprism classify clip.mp4 --labels "drumming,cooking,dancing" --plot labels.png
    videoprism index videos/ -o my_index --clip-seconds 10
    videoprism search my_index --text "a person playing drums" --plot hits.png
    videoprism export --format onnx -o videoprism.onnx --frames 16 --size 288

Errors are one line on stderr and a non-zero exit code.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

from .constants import DEFAULT_SOFT_CAP, MODEL_DTYPES, PROMPT_TEMPLATE, TEMPERATURE

DEFAULT_PRESET = "videoprism_lvt_public_v1_base"
BACKENDS = ("jax", "torch", "tensorflow")


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
        if value is None or value <= 0:
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
        p.add_argument("--soft-cap", type=float, help=cap_help)
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

    command("info", "presets, cache and backend").add_argument("--json", action="store_true")
    p = command("embed", "videos → embeddings file (.npy + .json, .npz or .parquet)")
    p.add_argument("videos", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--kind", choices=["video", "frames", "features"], default="video")
    p.add_argument("--clip-seconds", type=_positive(float))
    p.add_argument("--stride-seconds", type=_positive(float))
    model_options(p, text=False)
    p = command("classify", "zero-shot classification with free-text labels")
    p.add_argument("videos", nargs="+")
    p.add_argument("--labels", help="comma-separated labels")
    p.add_argument("--labels-file", help="one label per line")
    p.add_argument("--template", default=PROMPT_TEMPLATE, help="prompt; {} is the label")
    p.add_argument("--temperature", type=_positive(float), default=TEMPERATURE)
    p.add_argument("--top-k", type=_positive(int), default=5)
    p.add_argument("--plot", help="write a picture of the results (PNG)")
    model_options(p)
    p = command("index", "build or extend a searchable video index")
    p.add_argument("sources", nargs="+", help="video files or folders")
    p.add_argument("-o", "--output", required=True, help="index directory (extended if it exists)")
    p.add_argument("--clip-seconds", type=_positive(float), help="index windows of long videos")
    p.add_argument("--stride-seconds", type=_positive(float))
    ann_help = "index size from which search uses a faiss HNSW graph (default 1,000,000)"
    p.add_argument("--ann-threshold", type=_positive(int), help=ann_help)
    model_options(p, text=False)
    p = command("train", "train a classifier head on labelled clips (DIR/<label>/*)")
    p.add_argument("data", help="a folder with one sub-folder of videos per label")
    p.add_argument("-o", "--output", required=True, help="the trained classifier (.keras)")
    p.add_argument("--classifier", help="start from an official classifier checkpoint (.npz)")
    p.add_argument("--epochs", type=_positive(int), default=20)
    p.add_argument("--learning-rate", type=_positive(float), default=1e-3)
    model_options(p, text=False)
    p = command("search", "search an index by text or by example video")
    p.add_argument("index")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text")
    query.add_argument("--video")
    p.add_argument("--top-k", type=_positive(int), default=5)
    p.add_argument("--plot", help="write the top hits as frame strips (PNG)")
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
    return parser


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # usage error (one line, already printed) or --help
        return done.code or 0
    try:
        _use_backend(args.backend)
        result = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("videoprism: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line, not a traceback
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"videoprism: error: {message}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    return 0


def _use_backend(backend):
    """Keras reads KERAS_BACKEND once, when first imported: set it before that."""
    if not backend:
        return
    if "keras" in sys.modules:  # main() called in a process that already loaded Keras
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise UsageError(f"--backend {backend}: Keras is already loaded with {current}")
    os.environ["KERAS_BACKEND"] = backend


# ------------------------------------------------------------------ helpers
def _soft_cap(args) -> float:
    """The attention cap for an official .npz (which does not store it)."""
    return args.soft_cap or DEFAULT_SOFT_CAP


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


def _index_model(args, meta):
    """An index holds one model's embedding space: its preset (and soft cap) are the
    defaults, another one is an error. Its sampling (frames, size) is the default too."""
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
    # A different dtype is allowed: it approximates the same embedding space.
    args.dtype = args.dtype or meta.get("dtype")
    args.frames = args.frames or meta.get("num_frames")
    args.size = args.size or meta.get("size")


def _embed(args, model, videos, clip_seconds=None, stride_seconds=None, kind="video"):
    from .apps import embed_videos

    frames, size = _sampling(args, model)
    return embed_videos(model, videos, kind=kind, batch_size=args.batch_size, num_frames=frames,
                        size=size, clip_seconds=clip_seconds, stride_seconds=stride_seconds,
                        progress=not args.no_progress, on_error="skip")  # fmt: skip


def _report_failures(embeddings):
    for path, error in embeddings.failures:
        print(f"videoprism: skipped {path}: {error}", file=sys.stderr)


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
    files = _video_files(args.videos)  # before the model loads: a typo fails at once
    model = _model(args)
    embeddings = _embed(args, model, files, args.clip_seconds, args.stride_seconds, args.kind)
    _report_failures(embeddings)
    path = embeddings.save(args.output)
    if not args.json:
        print(f"{len(embeddings)} {args.kind} embeddings {embeddings.vectors.shape} → {path}")
    return {
        "output": str(path),
        "shape": list(embeddings.vectors.shape),
        "failures": embeddings.failures,
    }


def cmd_classify(args):
    from .apps import ZeroShotClassifier

    if bool(args.labels) == bool(args.labels_file):
        raise UsageError("give the labels with --labels 'a,b,c' or --labels-file FILE")
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
    _report_failures(embeddings)
    results = classifier.classify(embeddings.vectors, top_k=args.top_k)
    out = [{"video": p, "top": [{"label": lab, "probability": prob} for lab, prob in r]}
           for p, r in zip(embeddings.paths, results, strict=True)]  # fmt: skip
    if not args.json:
        for item in out:
            print(item["video"])
            for hit in item["top"]:
                print(f"  {hit['probability']:7.2%}  {hit['label']}")
    if args.plot:
        from .plots import plot_classification

        probabilities = classifier.probabilities(embeddings.vectors)
        plot_classification(embeddings.paths, probabilities, labels, args.plot, args.top_k)
    return out


def cmd_index(args):
    from .apps import VideoIndex

    out = Path(args.output)
    index = VideoIndex.load(out) if (out / "index.json").exists() else None
    _index_model(args, index.meta if index is not None else {})
    files = _video_files(args.sources)
    model = _model(args)
    frames, size = _sampling(args, model)
    if index is None:
        meta = {"preset": _preset_id(args.preset), "num_frames": frames, "size": size[0],
                "dtype": args.dtype or "float32"}  # fmt: skip
        if str(args.preset).endswith(".npz"):
            meta["soft_cap"] = _soft_cap(args)
        index = VideoIndex(meta=meta)
    if args.ann_threshold:
        index.ann_threshold = args.ann_threshold
    added = index.add_videos(model, files, args.clip_seconds, args.stride_seconds,
                             batch_size=args.batch_size, num_frames=frames, size=size,
                             progress=not args.no_progress, on_error="skip")  # fmt: skip
    _report_failures(added)
    index.save(out)
    if not args.json:
        skipped = f" (skipped {added.skipped} already indexed)" if added.skipped else ""
        print(f"indexed {len(added)} items{skipped}; {out} now holds {len(index)}")
    return {"index": str(out), "added": len(added), "skipped": added.skipped, "size": len(index)}


def cmd_search(args):
    from .apps import VideoIndex

    index = VideoIndex.load(args.index)
    _index_model(args, index.meta)
    model = _model(args, need_text=bool(args.text))
    if args.text:
        from .runtime import Encoder

        ids, mask = _tokenizer(args, model).tokenize_texts([args.text])
        query = Encoder(model).text(ids, mask)
    else:
        query = _embed(args, model, _video_files([args.video])).vectors
    hits = index.search(query, top_k=args.top_k)[0]
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
    if args.classifier:
        model = VideoPrismVideoClassifier.from_flax_checkpoint(args.classifier, _soft_cap(args))
        if model.num_classes != len(labels):
            raise UsageError(
                f"{args.classifier} has {model.num_classes} classes, {args.data} {len(labels)}"
            )
    else:
        model = VideoPrismVideoClassifier(_model(args), len(labels))
    files = [(f, i) for i, c in enumerate(classes) for f in _video_files([c])]
    # The backbone is frozen: run it once per clip, then train on the cached features.
    embeddings = _embed(args, model.backbone, [f for f, _ in files], kind="features")
    _report_failures(embeddings)
    targets = np.array([dict(files)[p] for p in embeddings.paths])
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    history = model.fit({"features": embeddings.vectors}, targets, epochs=args.epochs,
                        batch_size=args.batch_size, verbose=0)  # fmt: skip
    model.save(args.output)
    losses = [float(x) for x in history.history["loss"]]
    if not args.json:
        loss = f"loss {losses[0]:.3f} → {losses[-1]:.3f}"
        print(f"trained on {len(targets)} clips of {len(labels)} labels: {loss}")
        print(f"saved {args.output}")
    return {"labels": labels, "losses": losses, "output": args.output}


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


COMMANDS = {"export": cmd_export, "info": cmd_info, "embed": cmd_embed, "classify": cmd_classify,
            "index": cmd_index, "search": cmd_search, "train": cmd_train}  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
