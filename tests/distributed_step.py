"""One training step of each task model on 4 virtual CPU devices against one device.

Run by test_distribution.py in a subprocess: the device count must be set (XLA_FLAGS)
before JAX starts. Prints one JSON line: the largest difference per setting.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
sys.path.insert(0, os.path.dirname(__file__))

import jax
import keras
import numpy as np
from helpers import TINY_LVT, random_text, random_video

from videoprism_keras import VideoPrismBackbone, VideoPrismVideoClassifier
from videoprism_keras.finetune import VideoPrismContrastive

CONFIG = dict(TINY_LVT, num_spatial_layers=1, num_text_layers=1)
ids, mask = random_text(batch=4)
PAIRS = {"pixel_values": random_video(batch=4), "token_ids": ids, "padding_mask": mask}
LABELS = np.array([0, 1, 2, 1])


def contrastive(lora):
    keras.utils.set_random_seed(0)
    return VideoPrismContrastive(VideoPrismBackbone(**CONFIG), lora_rank=2 if lora else None)


def classifier(_lora):
    keras.utils.set_random_seed(0)
    backbone = VideoPrismBackbone(**{**CONFIG, "num_text_layers": 0})
    return VideoPrismVideoClassifier(backbone, 3, freeze_backbone=False)


def step(build, distribution, lora=False):
    """Weights before and after one SGD step, built and trained under `distribution`."""
    keras.distribution.set_distribution(distribution)
    try:
        model = build(lora)
        start = [np.asarray(w) for w in model.get_weights()]
        if lora:  # adapters away from zero, so that the step reaches the kernels' path
            for v in model.trainable_variables:
                if "lora_kernel_b" in v.path:
                    v.assign(np.full(v.shape, 0.01, "float32"))
        model.compile(optimizer=keras.optimizers.SGD(0.1), **(
            {} if isinstance(model, VideoPrismContrastive)
            else {"loss": "sparse_categorical_crossentropy"}))  # fmt: skip
        x, y = (PAIRS, None) if isinstance(model, VideoPrismContrastive) else (
            {"pixel_values": PAIRS["pixel_values"]}, LABELS)  # fmt: skip
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        return start, [np.asarray(w) for w in model.get_weights()]
    finally:
        keras.distribution.set_distribution(None)


def main():
    devices = jax.devices()
    assert len(devices) == 4, devices
    data = keras.distribution.DataParallel(devices=devices)
    mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"], devices)
    layout = VideoPrismBackbone(**CONFIG).get_layout_map(mesh)
    model = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    result, single = {}, {}  # the one-device step of a task model serves all its settings
    for name, build, lora, distribution in [
        ("contrastive_data_parallel", contrastive, False, data),
        ("classifier_data_parallel", classifier, False, data),
        ("contrastive_model_parallel", contrastive, False, model),
    ]:
        if (build, lora) not in single:
            single[build, lora] = step(build, None, lora)
        start, one = single[build, lora]
        _, many = step(build, distribution, lora)
        result[name] = {
            "max_difference": max(
                float(np.abs(a - b).max()) for a, b in zip(one, many, strict=True)
            ),
            "max_update": max(float(np.abs(a - s).max()) for a, s in zip(one, start, strict=True)),
        }
    # Where ModelParallel put a fused qkv kernel: split over the model axis.
    keras.distribution.set_distribution(model)
    sharded = VideoPrismBackbone(**CONFIG)
    kernel = sharded.video_encoder.spatial_encoder.blocks[0].attention.qkv_proj.kernel
    result["qkv_kernel_spec"] = [str(a) for a in kernel.value.sharding.spec]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
