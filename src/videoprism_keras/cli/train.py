"""`videoprism train` (a classifier head on labelled clips) and `videoprism finetune`
(contrastive fine-tuning on (video, caption) pairs): the library's `classifier_training`
and `finetune`, from the shell."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from ..constants import FINETUNE_LEARNING_RATE, FINETUNE_SETTINGS, FROZEN_TOWERS
from .inputs import check_output, report_failures
from .models import ModelOptions, quiet_native_logs
from .parser import UsageError, add_command, add_model_options, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "train", "train a classifier head on labelled clips "
                    "(DIR/<label>/*)", train)  # fmt: skip
    p.add_argument("data", help="a folder with one sub-folder of videos per label")
    p.add_argument("-o", "--output", required=True, help="the trained classifier (.keras)")
    p.add_argument("--classifier", help="start from an official classifier checkpoint (.npz; "
                   "default: a new head)")  # fmt: skip
    p.add_argument("--eval", metavar="FOLDER", help="held-out clips, laid out as DATA: top-1, "
                   "top-5 and mean per-class accuracy after training (default: none)")  # fmt: skip
    p.add_argument("--epochs", type=positive(int), default=20, help="passes over the clips")
    p.add_argument("--learning-rate", type=positive(float), default=1e-3, help="Adam's step size")
    tune = p.add_mutually_exclusive_group()
    tune.add_argument("--lora-rank", type=positive(int), help="also train backbone LoRA adapters")
    tune.add_argument("--full", action="store_true", help="fine-tune the whole backbone too")
    p.add_argument("--remat", action="store_true", help="with --lora-rank/--full: less memory")
    add_model_options(p, text=False, engine=False)

    p = add_command(subparsers, "finetune", "contrastive fine-tuning of an LvT model on "
                    "(video, caption) pairs", finetune)  # fmt: skip
    p.add_argument("pairs", help="CSV or parquet with columns path,caption[,start,end]")
    p.add_argument("-o", "--output", required=True, help="folder for checkpoints and results")
    p.add_argument("--eval", help="held-out pairs: retrieval before and after, as `eval "
                   "retrieval` measures (each clip once) (default: none)")  # fmt: skip
    p.add_argument("--epochs", type=positive(int), default=5, help="passes over the pairs")
    # The training flags default to None, so that --resume tells a flag not given (the
    # run's value) from one given (which must be the run's).
    p.add_argument("--learning-rate", type=positive(float), help="Adam's step size (default "
                   f"{FINETUNE_LEARNING_RATE:g}; with --resume, the run's)")  # fmt: skip
    p.add_argument("--lora-rank", type=positive(int), help="train LoRA adapters of this rank only")
    p.add_argument("--freeze", choices=FROZEN_TOWERS, help="keep this tower fixed (default: "
                   "train both)")  # fmt: skip
    p.add_argument("--remat", action="store_true", default=None,
                   help="recompute activations: less memory")  # fmt: skip
    resume_help = ("continue from -o's last checkpoint, with the run's settings (a training "
                   "flag given must repeat the run's)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help=resume_help)
    add_model_options(p, engine=False)
    batch = next(a for a in p._actions if a.dest == "batch_size")
    batch.help += f" (default {batch.default}; with --resume, the run's)"
    batch.default = None


def train(args: argparse.Namespace) -> dict:
    check_output(args.output, (".keras",), "-o")  # before hours of work, not after
    for flag, folder in (("", args.data), ("--eval ", args.eval)):  # before Keras loads
        if folder is not None and not Path(folder).is_dir():
            raise UsageError(f"{flag}{folder}: no such folder; expected one sub-folder of "
                             "videos per label")  # fmt: skip
    from .. import classifier_training
    from ..classifier import VideoPrismVideoClassifier

    try:
        labels, videos, targets = classifier_training.labelled_videos(args.data)
        held_out = _held_out(args, labels) if args.eval else None
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    options = ModelOptions.from_args(args)
    if args.classifier:
        model = VideoPrismVideoClassifier.from_flax_checkpoint(args.classifier, options.cap)
        if model.num_classes != len(labels):
            raise UsageError(
                f"{args.classifier} has {model.num_classes} classes, {args.data} {len(labels)}"
            )
        model.labels = labels
    else:
        model = VideoPrismVideoClassifier(options.load(), len(labels), labels=labels)
    frames, size = options.sampling(model.backbone)
    trained = classifier_training.train(
        model, videos, targets, epochs=args.epochs, learning_rate=args.learning_rate,
        batch_size=options.batch_size, num_frames=frames, size=size, lora_rank=args.lora_rank,
        full=args.full, remat=args.remat, progress=options.progress,
        on_decoded=partial(report_failures, strict=args.strict), held_out=held_out,
    )  # fmt: skip
    with quiet_native_logs():
        trained.model.save(args.output)
    losses, evaluation = trained.losses, trained.evaluation
    if not args.json:
        loss = f"loss {losses[0]:.3f} → {losses[-1]:.3f}"
        print(f"trained on {len(trained.paths)} clips of {len(labels)} labels: {loss}")
        if evaluation:
            skipped = len(evaluation["failures"])
            print(f"held out ({evaluation['clips']} clips" + (f", {skipped} unreadable skipped"
                  if skipped else "") + f"): top-1 {evaluation['top1']:.1%}, top-5 "
                  f"{evaluation['top5']:.1%}, mean per-class accuracy "
                  f"{evaluation['mean_class_accuracy']:.1%}")  # fmt: skip
        print(f"saved {args.output}")
    return {"labels": labels, "losses": losses, "output": args.output, "evaluation": evaluation}


def _held_out(args: argparse.Namespace, labels: list[str]) -> tuple[list[str], list[int]]:
    """--eval's videos and their classes, as indices of the training labels; a label the
    training data lacks is an error (no head learnt it)."""
    from .. import classifier_training
    from ..apps.evaluation.probe import label_mapping

    names, videos, targets = classifier_training.labelled_videos(args.eval)
    mapping = label_mapping(labels, names, train_name=args.data, val_name=f"--eval {args.eval}")
    return videos, [int(mapping[t]) for t in targets]


def finetune(args: argparse.Namespace) -> dict:
    for given in (args.pairs, args.eval):  # before Keras loads (read_pairs needs it): at once
        if given is not None and not Path(given).is_file():
            raise UsageError(f"{given}: no such file; expected a CSV or parquet of "
                             "path,caption pairs")  # fmt: skip
    from .. import finetune as library

    pairs = library.read_pairs(args.pairs)  # every file checked before any work
    held_out = library.read_pairs(args.eval) if args.eval else None
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UsageError(f"-o {args.output} exists and is not a folder")
    settings = training_settings(args, library)
    options = ModelOptions.from_args(args)
    model = options.load(need_text=True)
    tokenizer = options.load_tokenizer(model)
    # Not under `quiet_native_logs`, which would hold the progress bars back too: the
    # TensorFlow import when Keras first saves is quiet anyway (`main`'s quiet imports).
    summary = library.run(
        model, tokenizer, pairs, args.output, eval_pairs=held_out,
        epochs=args.epochs, resume=args.resume, verbose=0 if args.no_progress or args.json else 1,
        **settings,
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
            recall = summary[f"recall_{when}"]
            if recall:  # the names `eval retrieval` prints, not the deprecated `t2v@1`
                shown = [k for k in recall if "_" in k]
                print(f"recall {when}: " + ", ".join(f"{k} {recall[k]:.2f}" for k in shown))
        print(f"saved {args.output}")
    return summary


def training_settings(args: argparse.Namespace, library) -> dict:
    """`run`'s settings (`FINETUNE_SETTINGS`) from the flags given, checked before the
    model loads: -o holds a run exactly when --resume says so, and --resume takes the
    run's settings, refusing a flag given with another value (the checkpoint fixes the
    model, not how it trains)."""
    given = {name: getattr(args, "frames" if name == "num_frames" else name)
             for name in FINETUNE_SETTINGS}  # fmt: skip
    given = {name: value for name, value in given.items() if value is not None}
    try:
        done, _ = library.resume_state(args.output)
    except ValueError as err:  # a damaged state, a checkpoint gone: not a silent restart
        raise UsageError(f"-o {args.output}: {err}") from None
    if done and not args.resume:
        raise UsageError(f"-o {args.output} holds a run ({done} epochs): pass --resume or a new -o")
    if not args.resume:
        return given  # `run`'s defaults for the others
    if not done:
        raise UsageError(f"--resume: -o {args.output} holds no run to resume (no "
                         f"{library.STATE_FILE}): leave --resume out to start one")  # fmt: skip
    changed = library.changed_settings(args.output, given)
    if changed:
        shown = "; ".join(f"{_flag(name, g)}, the run's {_flag(name, r)}"
                          for name, (g, r) in changed.items())  # fmt: skip
        raise UsageError(f"--resume with other settings than the run in -o {args.output}: "
                         f"{shown}: leave them out to use the run's, or give a new -o")  # fmt: skip
    return {**library.recorded_settings(args.output), **given}


def _flag(name: str, value) -> str:
    """A setting as its flag: `--lora-rank 2`, `--remat`, `no --freeze`."""
    flag = "--" + name.replace("_", "-")
    if value is None or value is False:
        return f"no {flag}"
    if value is True:
        return flag
    if isinstance(value, list):  # a recorded size: (height, width)
        value = value[0] if value[0] == value[1] else "x".join(map(str, value))
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
