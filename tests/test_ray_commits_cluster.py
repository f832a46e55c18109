"""The null pipeline's commits (`apps/ray_null.py`) on a Ray cluster on this machine (a
head and two worker nodes, `ray.cluster_utils.Cluster`) rather than a local instance:
every clip exactly once, each file's last clip marked. Its own module: a process holds
one Ray session, and the other Ray tests share a plain local instance."""

import functools
from collections import Counter

import pytest
import ray_helpers
from ray_helpers import SAMPLING, preset

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps import ray_pipeline as rp
from videoprism_keras.apps.ray_null import NullEncoder, blank_rows

ray = pytest.importorskip("ray")
FILES, CLIPS = 6, 100  # clips per file: 600 in all


@pytest.fixture()
def cluster():
    yield from ray_helpers.cluster()


def test_null_pipeline_on_a_two_node_cluster_commits_each_clip_once(cluster, golden_dir,
                                                                    tmp_path):  # fmt: skip
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(FILES):  # the null decoder does not open them
        (videos / f"{i}.mp4").write_bytes(b"x" * (i + 1))
    name, overrides = preset(golden_dir)
    model = vp.VideoPrismBackbone.from_preset(name, **overrides)
    index = VideoIndex(tmp_path / "ix")
    options = rp.RayOptions(batch_size=64, encoder=NullEncoder, commit_seconds=600.0,
                            commit_clips=200,
                            decoder=functools.partial(blank_rows, clips=CLIPS))  # fmt: skip
    run = rp.index_on_ray(model, [videos], index, 1.0, **SAMPLING, options=options)
    assert len(run) == FILES * CLIPS and run.skipped == 0 and not run.failures
    table = index.to_arrow().select(["id", "file_id", "start_s", "last_clip"]).to_pylist()
    assert len({row["id"] for row in table}) == len(table) == FILES * CLIPS
    marked = Counter(row["file_id"] for row in table if row["last_clip"])
    assert len(marked) == FILES and set(marked.values()) == {1}
    assert all(row["start_s"] == CLIPS - 1 for row in table if row["last_clip"])
