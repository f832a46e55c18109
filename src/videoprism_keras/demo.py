"""`make demo`: build the released configurations and run one clip through the base model.

Pretrained weights need a download; this demo uses random weights, so it runs
anywhere, and shows the shapes and sizes a user gets.
"""

import time

import numpy as np

from .model.backbone import VideoPrismBackbone
from .presets import PRESET_CONFIGS


def main():
    import keras

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}\n")
    for name, config in PRESET_CONFIGS.items():
        model = VideoPrismBackbone(**config)
        print(f"{name:34s} {model.count_params() / 1e6:6.1f}M parameters")
        del model
    model = VideoPrismBackbone(**PRESET_CONFIGS["videoprism_public_v1_base"])
    video = np.random.default_rng(0).uniform(size=(1, 16, 288, 288, 3)).astype("float32")
    start = time.perf_counter()
    features = model.predict(video, verbose=0)
    print(f"\nvideoprism_public_v1_base: pixel_values {video.shape} -> features {features.shape}")
    print(f"(B, frames, 16x16 patches, hidden_dim) in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
