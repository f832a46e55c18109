"""Run by the index tests as a separate process: indexes video sources into an index with
a tiny random model, sleeping `--delay` seconds per batch so that another one can run
beside it, or, with `--stop-after N`, waiting before the model's (N+1)th clip (N clips
committed) for the test to kill it. Prints {"embedded": clips the model ran on, ...}.

    python tests/index_worker.py INDEX SOURCE... [--delay 0.2] [--stop-after 3]
"""

import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import keras
from helpers import TINY
from killable import wait_to_be_killed

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
from videoprism_keras.runtime import Encoder


class SlowEncoder(Encoder):
    def __init__(self, model, delay, stop_after):
        super().__init__(model)
        self.delay, self.stop_after, self.clips = delay, stop_after, 0

    def video(self, pixels, frame_padding_mask=None):
        if self.stop_after is not None and self.clips >= self.stop_after:
            wait_to_be_killed()  # mid-run, every earlier batch committed
        time.sleep(self.delay)
        self.clips += len(pixels)
        return super().video(pixels, frame_padding_mask)


def main():
    # Ctrl-C as from a terminal: a test run started in the background (`make test &`)
    # hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser()
    parser.add_argument("index")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)  # every process: the same model
    model = vp.VideoPrismBackbone(**TINY)
    encoder = SlowEncoder(model, args.delay, args.stop_after)
    added = VideoIndex(args.index).add_videos(
        model, args.sources, clip_seconds=1.0, batch_size=1, progress=False, encoder=encoder
    )
    print(json.dumps({"embedded": encoder.clips, "added": len(added), "skipped": added.skipped}))


if __name__ == "__main__":
    main()
