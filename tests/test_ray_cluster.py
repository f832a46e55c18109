"""A node of a Ray cluster dies mid-job: a cluster on this machine (a head and two worker
nodes, `ray.cluster_utils.Cluster`), the worker node running the model actor removed
while it works, a fresh node added. The job completes with every clip exactly once, and
the embeddings equal the in-process ones. Its own module: a process holds one Ray
session, and the other Ray tests share a plain local instance."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray_helpers
from ray_helpers import CLIP_SECONDS, SAMPLING, SlowEncoder, library, preset, rows

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex, embed_videos
from videoprism_keras.apps import ray_pipeline as rp

ray = pytest.importorskip("ray")


@pytest.fixture()
def cluster():
    yield from ray_helpers.cluster()


def _model_node(cluster, report):
    """The worker node the model actor last ran a batch on."""
    lines = report.read_text().split() if report.exists() else []
    return next((n for n in cluster.worker_nodes if lines and n.node_id == lines[-1]), None)


def test_a_node_dies_mid_job(cluster, golden_dir, media_dir, tmp_path):
    videos = library(tmp_path / "videos", media_dir)
    name, overrides = preset(golden_dir)
    model = vp.VideoPrismBackbone.from_preset(name, **overrides)
    index = VideoIndex(tmp_path / "ix")
    report = tmp_path / "nodes.txt"
    SlowEncoder.report, result = str(report), []

    def job():
        result.append(rp.index_on_ray(model, [videos], index, CLIP_SECONDS, **SAMPLING,
                                      load_model=rp.PresetLoader(name, overrides),
                                      options=rp.RayOptions(batch_size=1,
                                                            encoder=SlowEncoder)))  # fmt: skip

    # The driver runs the job in a thread; this one (Ray starts nodes from the main
    # thread only) removes the model's node once a clip is committed, and adds a node.
    driver = threading.Thread(target=job)
    driver.start()
    killed, deadline = [], time.time() + 120
    while driver.is_alive() and not killed and time.time() < deadline:
        node = _model_node(cluster, report) if len(VideoIndex(index.uri)) else None
        if node is not None:
            cluster.remove_node(node, allow_graceful=False)
            killed.append(len(VideoIndex(index.uri)))
            cluster.add_node(**ray_helpers.CLUSTER_NODE)
        time.sleep(0.2)
    driver.join()
    SlowEncoder.report = None
    (added,) = result
    assert killed and 1 <= killed[0] < 9  # the node died mid-job
    assert len(added) <= 9 and not added.failures
    clips = rows(index)  # every clip exactly once
    assert len(clips) == 9
    expected = embed_videos(model, sorted(videos.iterdir()), clip_seconds=CLIP_SECONDS,
                            progress=False, **SAMPLING)  # fmt: skip
    by_key = {(row["path"], row["start_s"]): vector for row, vector in clips.values()}
    got = np.stack(
        [
            by_key[(str(Path(p).resolve()), s)]
            for p, s in zip(expected.paths, expected.start_s, strict=True)
        ]
    )
    norm = np.linalg.norm(expected.vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected.vectors / norm, atol=1e-6, rtol=0)
