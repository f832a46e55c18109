"""Indexing and embedding on Ray (Ray Data): one local instance (2 CPUs) shared by these
tests, the small golden checkpoint and real clips. Same results as in process, bad files
recorded, a killed driver's job finished by the same command, exactly once."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ray_helpers import CLIP_SECONDS, SAMPLING, assert_same_index, library, preset

import videoprism_keras as vp
from videoprism_keras import cli
from videoprism_keras.apps import VideoIndex, embed_videos
from videoprism_keras.apps import ray_pipeline as rp
from videoprism_keras.apps.embed_writer import EmbeddingWriter
from videoprism_keras.apps.embedding import Embeddings
from videoprism_keras.apps.index import store

ray = pytest.importorskip("ray")
DRIVER = Path(__file__).with_name("ray_driver.py")


@pytest.fixture(scope="module")
def model(golden_dir):
    name, overrides = preset(golden_dir)
    return vp.VideoPrismBackbone.from_preset(name, **overrides)


@pytest.fixture(scope="module")
def videos(tmp_path_factory, media_dir):
    return library(tmp_path_factory.mktemp("ray") / "videos", media_dir, bad=True)


@pytest.fixture(scope="module")
def in_process(model, videos, tmp_path_factory):
    """The index `videoprism index` builds without Ray."""
    index = VideoIndex(tmp_path_factory.mktemp("in_process") / "ix")
    index.add_videos(model, [videos], CLIP_SECONDS, batch_size=2, progress=False,
                     on_error="skip", **SAMPLING)  # fmt: skip
    assert len(index) == 9
    return index


def test_index_on_ray_equals_in_process_bad_file_recorded(ray_local, model, golden_dir, videos,
                                                           in_process, tmp_path,
                                                           capsys):  # fmt: skip
    index = VideoIndex(tmp_path / "ix")
    added = rp.index_on_ray(model, [videos], index, CLIP_SECONDS, **SAMPLING,
                            load_model=rp.PresetLoader(*preset(golden_dir)),
                            options=rp.RayOptions(batch_size=2, progress=True))  # fmt: skip
    assert len(added) == 9 and added.skipped == 0
    # The bar's total is counted before Ray starts (the broken file as one clip, until
    # read), and ends at what was done.
    bar = capsys.readouterr().err.replace("\r", "\n")
    assert "| 0/10 [" in bar and "| 9/9 [" in bar
    bad = str(videos / "broken.mp4")
    assert [path for path, _ in added.failures] == [bad]
    assert [path for path, _ in rp.failures_of(index)] == [bad]
    assert_same_index(index, in_process)  # rows, posters, last_clip; vectors <= 1e-6
    assert index.meta == in_process.meta  # preset, sampling, backbone
    # A second run has nothing to embed: every file is whole in the index.
    again = rp.index_on_ray(model, [videos / "0.mp4", videos / "drums.mp4"], index,
                            CLIP_SECONDS, **SAMPLING)  # fmt: skip
    assert len(again) == 0 and again.skipped == 7 and len(index) == 9


def test_embed_on_ray_from_a_list_equals_embed_videos(ray_local, model, videos, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = [videos / "0.mp4", videos / "broken.mp4", videos / "1.mp4"]
    expected = embed_videos(model, files, clip_seconds=CLIP_SECONDS, progress=False,
                            on_error="skip", **SAMPLING)  # fmt: skip
    # A list of sources: a path relative to the list, an absolute one, a URI.
    uri = (videos / "1.mp4").resolve().as_uri()
    listed = [os.path.relpath(files[0], tmp_path), str(files[1]), uri]
    pq.write_table(pa.table({"path": listed}), tmp_path / "list.parquet")
    writer = EmbeddingWriter(tmp_path / "out.npz", {"--kind": "video"})
    run = rp.embed_on_ray(model, [tmp_path / "list.parquet"], writer, "video", CLIP_SECONDS,
                          **SAMPLING)  # fmt: skip
    writer.finish("video")
    got = Embeddings.load(tmp_path / "out.npz")
    assert run.written == len(got) == len(expected) == 4
    assert [path for path, _ in run.failures] == [str(files[1])]
    assert json.loads((tmp_path / "out.npz.failures.jsonl").read_text())["path"] == str(files[1])
    named = {str(tmp_path / listed[0]): str(files[0]), uri: str(files[2])}
    order = {(named[p], s): i for i, (p, s) in enumerate(zip(got.paths, got.start_s, strict=True))}
    mine = [order[(str(p), s)] for p, s in zip(expected.paths, expected.start_s, strict=True)]
    np.testing.assert_allclose(got.vectors[mine], expected.vectors, atol=1e-6, rtol=0)


def _cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_cli_driver_killed_then_the_same_command_finishes(ray_local, golden_dir, videos,
                                                          in_process, tmp_path, sig):  # fmt: skip
    index_path = tmp_path / "ix"
    name, _ = preset(golden_dir)
    command = ["index", videos, "-o", index_path, "--clip-seconds", CLIP_SECONDS, "--preset",
               name, "--soft-cap", "5", "--num-frames", "4", "--size", "16", "--batch-size", "1",
               "--no-progress", "--json", "--ray", ray_local]  # fmt: skip
    # Stops before its second commit (the first batch is committed at once, the next
    # clips wait up to RAY_COMMIT_SECONDS for theirs).
    driver = _cli(DRIVER, 1, *command)
    deadline = time.time() + 120
    while time.time() < deadline:
        assert driver.poll() is None, driver.stderr.read()[-2000:]
        if store.has_committed_table(index_path) and len(VideoIndex.load(index_path)) >= 1:
            break
        time.sleep(0.1)
    driver.send_signal(sig)
    _, stopped = driver.communicate(timeout=60)
    if sig == signal.SIGINT:  # Ctrl-C: one line and the shell's code, no traceback
        assert driver.returncode == 130, stopped[-2000:]
        assert stopped.splitlines()[-1] == "videoprism: interrupted"
        assert "Traceback" not in stopped
    held = len(VideoIndex.load(index_path))
    assert 1 <= held < 9  # killed mid-job, every commit kept
    again = _cli("-m", "videoprism_keras.cli", *command)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    done = json.loads(out)
    assert done.pop("commit_attempts") >= done.pop("commits") >= 1  # how the commits went
    assert done == {
        "index": str(index_path),
        "added": 9 - held,
        "skipped": held,
        "size": 9,
    }
    # Ray's and the model's own logs stay out of the terminal: only our lines.
    ours = [line for line in err.splitlines() if line.startswith("videoprism: ")]
    assert len(ours) == 2 and "broken.mp4" in ours[0]
    # Same rows as in process: every clip once, each file's last clip marked.
    assert_same_index(VideoIndex.load(index_path), in_process)


def test_cli_bad_ray_address_is_one_line_naming_the_flag(ray_local, videos, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = cli.main(["index", str(videos), "-o", str(tmp_path / "ix"), "--ray",
                     f"127.0.0.1:{port}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"videoprism: error: --ray 127.0.0.1:{port}: no Ray cluster")
    assert cli.main(["index", str(videos), "-o", str(tmp_path / "ix"), "--workers", "2"]) == 2
    assert "--workers is an option of --ray" in capsys.readouterr().err
    assert cli.main(["index", "--ray", str(videos), str(videos), "-o", str(tmp_path / "ix")]) == 2
    assert "put --ray after the sources" in capsys.readouterr().err


def test_cli_a_bad_entry_of_a_source_list_is_one_recorded_failure(ray_local, golden_dir, videos,
                                                                   tmp_path, capsys):  # fmt: skip
    listing = tmp_path / "list.csv"
    listing.write_text(f"path\n{videos / 'drums.mp4'}\n{tmp_path / 'gone.mp4'}\n"
                       "http://example.com/a.mp4\n")  # fmt: skip
    name, _ = preset(golden_dir)
    code = cli.main(["index", str(listing), "-o", str(tmp_path / "ix"), "--preset", name,
                     "--soft-cap", "5", "--num-frames", "4", "--size", "16", "--no-progress",
                     "--ray", ray_local])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    index = VideoIndex.load(tmp_path / "ix")
    assert set(index.paths) == {os.path.realpath(videos / "drums.mp4")}
    failed = dict(index.failures())
    assert set(failed) == {str(tmp_path / "gone.mp4"), "http://example.com/a.mp4"}
    assert "gone.mp4" in err and "http://example.com/a.mp4" in err
    code = cli.main(["embed", str(listing), "-o", str(tmp_path / "e.npz"), "--preset", name,
                     "--soft-cap", "5", "--num-frames", "4", "--size", "16", "--no-progress",
                     "--ray", ray_local])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "gone.mp4" in err and "http://example.com/a.mp4" in err
    assert list(np.load(tmp_path / "e.npz")["paths"]) == [str(videos / "drums.mp4")]
