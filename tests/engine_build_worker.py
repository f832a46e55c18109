"""A process that builds an engine artefact for the cache tests (tests/test_engine_cache.py).

    python engine_build_worker.py CACHE OUT build SHARED  # build (or find) it, save outputs
    python engine_build_worker.py CACHE OUT pause SHARED  # stop, files staged, until killed
    python engine_build_worker.py CACHE OUT signal SHARED  # OpenVINO engines made and
        # dropped; OUT: whether the thread's signal stack is the one it had before, and
        # whether a SIGTERM to itself then reached its handler

The model is the small checkpoint (SHARED/golden), the clips OUT's folder's clips.npy, the
engine ONNX Runtime float32 (the quickest build) but in "signal" mode.
"""

import ctypes
import gc
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
from killable import wait_to_be_killed

import videoprism_keras as vp
from videoprism_keras.engine import build
from videoprism_keras.runtime import Encoder


def signal_stack() -> bytes:
    """The calling thread's alternate signal stack, as sigaltstack(2) writes it (Linux)."""
    stack = ctypes.create_string_buffer(24)  # stack_t: pointer, int (padded), size_t
    assert ctypes.CDLL(None).sigaltstack(None, stack) == 0
    return stack.raw


def main(cache, out, mode, shared):
    model = vp.VideoPrismBackbone.from_preset(Path(shared) / "golden" / "lvt_small.ckpt.npz",
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    clips = np.load(Path(out).with_name("clips.npy"))
    if mode == "pause":
        real = build.build_onnxruntime

        def staged_then_wait(onnx, folder, *args):
            details = real(onnx, folder, *args)  # the artefact's files are in `folder`
            Path(out).write_text(str(folder))  # tells the test where, and that it may kill
            wait_to_be_killed()
            return details

        build.build_onnxruntime = staged_then_wait
    if mode == "signal":
        before = signal_stack()
        # Two OpenVINO encoders, the int8 one built through NNCF (which loads OpenVINO's
        # CPU plugin on Cores of its own), dropped in the order they were made.
        encoders = [Encoder(model, "openvino", precision, cache_dir=cache)
                    for precision in ("float32", "int8")]  # fmt: skip
        for encoder in encoders:
            encoder.video(clips)
        while encoders:
            del encoders[0]
            gc.collect()
        handled = []
        signal.signal(signal.SIGTERM, lambda *_: handled.append(True))
        os.kill(os.getpid(), signal.SIGTERM)
        Path(out).write_text(json.dumps({"same stack": signal_stack() == before,
                                         "handled": bool(handled)}))  # fmt: skip
        return
    encoder = Encoder(model, "onnxruntime", "float32", cache_dir=cache)
    np.save(out, encoder.video(clips)["vision_embeddings"])


if __name__ == "__main__":
    main(*sys.argv[1:5])
