"""`videoprism classify`: zero-shot with free-text labels, or with a head `train` wrote."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..constants import CLASSIFICATION_TITLE, PROMPT_TEMPLATE, TEMPERATURE
from .inputs import check_output, report_failures, video_files
from .models import ModelOptions, quiet_native_logs
from .parser import UsageError, add_command, add_model_options, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "classify", "zero-shot with free-text labels, or a trained "
                    "head (--head)", classify)  # fmt: skip
    p.add_argument("videos", nargs="+", help="video files, image folders or folders of videos")
    p.add_argument("--labels", help="comma-separated labels (or --labels-file, or --head)")
    p.add_argument("--labels-file", help="a text file of labels, one per line")
    p.add_argument("--head", help="a classifier trained by `videoprism train` (.keras)")
    p.add_argument("--template", default=PROMPT_TEMPLATE, help="the prompt; {} is the label")
    temperature_help = "softmax temperature over the cosine similarities (lower: more peaked)"
    p.add_argument("--temperature", type=positive(float), default=TEMPERATURE,
                   help=temperature_help)  # fmt: skip
    p.add_argument("--top-k", type=positive(int), default=5, help="labels shown per video")
    p.add_argument("--plot", help="write a picture of the results (PNG; default: none)")
    title_help = f"the --plot picture's title (default: {CLASSIFICATION_TITLE!r})"
    p.add_argument("--title", help=title_help)
    add_model_options(p)


def classify(args: argparse.Namespace) -> list:
    if args.plot:
        check_output(args.plot, (".png",), "--plot")
    elif args.title is not None:
        raise UsageError("--title is the --plot picture's: add --plot FILE.png")
    if args.head:
        return classify_with_head(args)
    if bool(args.labels) == bool(args.labels_file):
        raise UsageError(
            "give the labels with --labels 'a,b,c' or --labels-file FILE, or a trained "
            "classifier with --head FILE.keras"
        )
    text = args.labels if args.labels else Path(args.labels_file).read_text()
    labels = [label.strip() for label in text.replace("\n", ",").split(",") if label.strip()]
    if "{}" not in args.template:
        raise UsageError(f"--template needs '{{}}' where the label goes; got {args.template!r}")
    files = video_files(args.videos)
    from ..apps import ZeroShotClassifier  # Keras, once the arguments are known to be right

    options = ModelOptions.from_args(args)
    model = options.load(need_text=True)
    encoder = options.encoder(model)  # one compiled model for the labels and the videos
    classifier = ZeroShotClassifier(model, options.load_tokenizer(model), labels, args.template,
                                    args.temperature, encoder=encoder)  # fmt: skip
    embeddings = options.embed(model, files, encoder=encoder)
    report_failures(embeddings.failures, embedded=len(embeddings), strict=args.strict)
    results = classifier.classify(embeddings.vectors, top_k=args.top_k)
    out = print_top_labels(args, embeddings.paths, results)
    if args.plot:
        from ..plots import plot_classification

        probabilities = classifier.probabilities(embeddings.vectors)
        plot_classification(embeddings.paths, probabilities, labels, args.plot, args.top_k,
                            args.title or CLASSIFICATION_TITLE)  # fmt: skip
    return out


def classify_with_head(args: argparse.Namespace) -> list:
    """`classify --head`: the labels and the model are the trained classifier's."""
    if args.labels or args.labels_file or args.preset:
        raise UsageError("--head brings its own labels and backbone: leave out --labels, "
                         "--labels-file and --preset")  # fmt: skip
    head = Path(args.head)
    if head.suffix != ".keras" or not head.is_file():
        raise UsageError(f"--head {args.head}: expected a .keras file written by videoprism train")
    files = video_files(args.videos)
    import keras  # once the arguments are known to be right

    try:
        with quiet_native_logs():
            model = keras.saving.load_model(head)
    except Exception as err:  # Keras raises many types for a damaged or foreign file
        raise UsageError(f"--head {args.head} is not a readable classifier: {err}") from err
    if not hasattr(model, "predict_labels"):
        raise UsageError(f"--head {args.head} holds a {type(model).__name__}, not a classifier")
    options = head_options(args, model)
    embeddings = options.embed(model.backbone, files, kind="features")
    report_failures(embeddings.failures, embedded=len(embeddings), strict=args.strict)
    results = model.predict_labels({"features": embeddings.vectors}, top_k=args.top_k, verbose=0)
    return print_top_labels(args, embeddings.paths, results)


def head_options(args: argparse.Namespace, model) -> ModelOptions:
    """The flags, with the sampling the head was trained with (where it records it) and
    its backbone's attention cap: other values would feed it features it never saw."""
    options = ModelOptions.from_args(args)
    if options.dtype is not None or options.engine_asked is not None:
        flag = "--dtype" if options.dtype is not None else "--engine"
        raise UsageError(f"--head {args.head} runs as it was saved (its dtype, on Keras): "
                         f"leave {flag} out")  # fmt: skip
    options = dataclasses.replace(options, engine=None)
    cap = model.backbone.attention_logit_soft_cap
    if options.soft_cap is not None and options.soft_cap != cap:
        held = "no attention cap" if cap is None else f"--soft-cap {cap:g}"
        raise UsageError(f"--head {args.head} was trained with {held}, not --soft-cap "
                         f"{options.soft_cap:g}: leave --soft-cap out")  # fmt: skip
    trained = getattr(model, "trained_sampling", None)
    if not trained:  # a head saved before it was recorded: the flags, or the backbone's
        return options
    frames, (height, width) = trained["num_frames"], trained["size"]
    for flag, given, held in (
        ("--num-frames", options.num_frames, frames),
        ("--size", options.size, height if height == width else None),
    ):
        if given is not None and given != held:
            shown = held if held is not None else f"{height}x{width}"
            raise UsageError(f"--head {args.head} was trained with {flag} {shown}, not "
                             f"{given}: leave {flag} out to use the head's")  # fmt: skip
    return dataclasses.replace(options, num_frames=frames, size=(height, width))


def print_top_labels(args: argparse.Namespace, paths: list, results: list) -> list:
    """Each video's top (label, probability) pairs: printed, and as the JSON result."""
    out = [{"video": p, "top": [{"label": lab, "probability": prob} for lab, prob in r]}
           for p, r in zip(paths, results, strict=True)]  # fmt: skip
    if not args.json:
        for item in out:
            print(item["video"])
            for hit in item["top"]:
                print(f"  {hit['probability']:7.2%}  {hit['label']}")
    return out
