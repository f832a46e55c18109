"""A process that builds an engine artefact for the cache tests (tests/test_engine_cache.py).

    python engine_build_worker.py CACHE OUT build SHARED  # build (or find) it, save outputs
    python engine_build_worker.py CACHE OUT pause SHARED  # stop, files staged, until killed

The model is the small checkpoint (SHARED/golden), the clips OUT's folder's clips.npy, the
engine ONNX Runtime float32 (the quickest build).
"""

import sys
from pathlib import Path

import numpy as np
from killable import wait_to_be_killed

import videoprism_keras as vp
from videoprism_keras.engine import build
from videoprism_keras.runtime import Encoder


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
    encoder = Encoder(model, "onnxruntime", "float32", cache_dir=cache)
    np.save(out, encoder.video(clips)["vision_embeddings"])


if __name__ == "__main__":
    main(*sys.argv[1:5])
