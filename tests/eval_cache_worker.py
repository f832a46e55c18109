"""Run by tests/test_eval_cache.py as a separate process: embeds videos into an eval cache
with the small LvT model, one clip per batch, and with `--stop-after N` waits before the
model's (N+1)th clip (N clips committed) for the test to kill it.

    python tests/eval_cache_worker.py CACHE CHECKPOINT VIDEO... [--stop-after 2]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from killable import wait_to_be_killed

import videoprism_keras as vp
from videoprism_keras.apps.evaluation.cache import EmbeddingCache, model_key
from videoprism_keras.apps.evaluation.datasets import Clip
from videoprism_keras.runtime import Encoder


class StoppingEncoder(Encoder):
    def __init__(self, model, stop_after):
        super().__init__(model)
        self.stop_after, self.clips = stop_after, 0

    def video(self, pixels, frame_padding_mask=None):
        if self.stop_after is not None and self.clips >= self.stop_after:
            wait_to_be_killed()  # mid-run, every earlier batch committed
        self.clips += len(pixels)
        return super().video(pixels, frame_padding_mask)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cache")
    parser.add_argument("checkpoint")
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()
    model = vp.VideoPrismBackbone.from_preset(args.checkpoint, attention_logit_soft_cap=5.0)
    key = model_key(model, source=args.checkpoint, dtype="float32")
    cache = EmbeddingCache(args.cache, key, "ds")
    cache.videos(model, [Clip(v) for v in args.videos], num_frames=2, size=36, batch_size=1,
                 progress=False, encoder=StoppingEncoder(model, args.stop_after))  # fmt: skip


if __name__ == "__main__":
    main()
