"""Run by the index tests as a separate process: indexes video sources into an index with
a tiny random model, sleeping `--delay` seconds per batch so that a test can kill it or
run another one beside it. Prints {"embedded": clips the model ran on, "skipped": ...}.

    python tests/index_worker.py INDEX SOURCE... [--delay 0.2]
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import keras
from helpers import TINY

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
from videoprism_keras.runtime import Encoder


class SlowEncoder(Encoder):
    def __init__(self, model, delay):
        super().__init__(model)
        self.delay, self.clips = delay, 0

    def video(self, pixels, frame_padding_mask=None):
        time.sleep(self.delay)
        self.clips += len(pixels)
        return super().video(pixels, frame_padding_mask)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("index")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)  # every process: the same model
    model = vp.VideoPrismBackbone(**TINY)
    encoder = SlowEncoder(model, args.delay)
    added = VideoIndex(args.index).add_videos(
        model, args.sources, clip_seconds=1.0, batch_size=1, progress=False, encoder=encoder
    )
    print(json.dumps({"embedded": encoder.clips, "added": len(added), "skipped": added.skipped}))


if __name__ == "__main__":
    main()
