"""`videoprism export`: the model as a SavedModel, ONNX or LiteRT file, for serving."""

from __future__ import annotations

import argparse
import sys

from ..constants import (
    DEFAULT_SOFT_CAP,
    EXPORT_FORMATS,
    ONNX_ROUTE_BACKEND,
    QUANTIZATION_MODES,
)
from .models import ModelOptions
from .parser import DEFAULT_PRESET, UsageError, add_command, add_sampling_options, positive


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "export", "the model as a SavedModel, ONNX or LiteRT file, for "
                    "serving", export)  # fmt: skip
    format_help = "TF Serving's SavedModel, ONNX or LiteRT (.tflite)"
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True, help=format_help)
    p.add_argument("-o", "--output", required=True,
                   help="a directory (tf_saved_model), a .onnx or a .tflite file")  # fmt: skip
    p.add_argument("--preset", help=f"as for the other commands (default {DEFAULT_PRESET})")
    cap_help = f"attention logit cap, for .npz checkpoints (default {DEFAULT_SOFT_CAP:g})"
    p.add_argument("--soft-cap", type=positive(float), help=cap_help)
    add_sampling_options(p)
    p.add_argument("--text-length", type=positive(int), default=64,
                   help="tokens per text, for LvT models")  # fmt: skip
    p.add_argument("--batch-size", type=positive(int),
                   help="a fixed batch (default: any)")  # fmt: skip
    p.add_argument("--quantize", choices=QUANTIZATION_MODES,
                   help="quantize the projections first (default: no)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")


def export(args: argparse.Namespace) -> dict:
    from ..export_paths import check_destination  # Keras-free: before Keras loads

    try:  # before Keras and the model load: at once
        check_destination(args.output, args.format)
        import keras

        from ..export import check_backend

        check_backend(args.format, keras.backend.backend())
    except ValueError as err:
        raise UsageError(getattr(err, "cli_message", str(err))) from err
    model = ModelOptions.from_args(args).load()  # float32: export has no --dtype
    if args.quantize:
        model.quantize(args.quantize)
    shape = dict(num_frames=args.frames, size=args.size, text_length=args.text_length)
    if (args.format, keras.backend.backend()) == ("onnx", "tensorflow"):
        print(f"videoprism: ONNX from --backend tensorflow is exported under --backend "
              f"{ONNX_ROUTE_BACKEND} in a child process, from the same weights "
              "(TensorFlow's converter needs too much memory)", file=sys.stderr)  # fmt: skip
    model.export(args.output, args.format, False, batch_size=args.batch_size, **shape)
    if not args.json:
        print(f"exported {args.preset or DEFAULT_PRESET} ({args.format}) → {args.output}")
    return {"output": str(args.output), "format": args.format}
