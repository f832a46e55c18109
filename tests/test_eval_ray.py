"""`videoprism eval` on Ray: `eval retrieval --ray=ADDRESS` writes the record the local run
writes and a second run embeds nothing; the cache's token features on Ray are the local
ones. One local Ray instance for the module (`ray_local`), the small LvT checkpoint on a
few generated videos, run in this process (Ray's workers import the package as it does)."""

import json

import numpy as np
import pytest
from cli_helpers import call
from videos import lavfi_video

import videoprism_keras as vp
from videoprism_keras.apps.evaluation.cache import EmbeddingCache, model_key
from videoprism_keras.apps.evaluation.datasets import Clip

pytest.importorskip("ray")

SOURCES = ("testsrc2", "mandelbrot", "life")
CAPTIONS = ("a test pattern", "a fractal zoom", "cells that live and die")
SAMPLING = dict(num_frames=2, size=36)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three short distinct videos and their captions (the first video twice)."""
    folder = tmp_path_factory.mktemp("eval_ray")
    for i, source in enumerate(SOURCES):
        lavfi_video(folder / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
    rows = [f"v{i}.mp4,{caption}" for i, caption in enumerate(CAPTIONS)]
    rows.append("v0.mp4,bars and a moving square")
    (folder / "captions.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def flags(golden_dir, media_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--tokenizer",
            media_dir / "test_spm.model", "--num-frames", "2", "--size", "36",
            "--no-progress", "--bootstrap", "20", "--json"]  # fmt: skip


def _figures(record):
    return {**record["metrics"], **{f"{k} interval": v for k, v in record["intervals"].items()}}


def test_eval_retrieval_on_ray_writes_the_local_record_and_reruns_from_the_cache(
    data, flags, ray_local, tmp_path, capsys
):
    retrieval = ["eval", "retrieval", data / "captions.csv", *flags]
    local = call(capsys, *retrieval, "--cache", tmp_path / "local", "-o", tmp_path / "a")
    assert local.returncode == 0, local.stderr[-2000:]
    on_ray = [*retrieval, "--cache", tmp_path / "ray", "-o", tmp_path / "b", f"--ray={ray_local}"]
    first = call(capsys, *on_ray)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "videos: 3 embedded, 0 from the cache" in first.stderr, first.stderr

    expected, got = json.loads(local.stdout), json.loads(first.stdout)
    for part in ("task", "dataset", "model", "sampling", "items", "bootstrap", "settings"):
        assert got[part] == expected[part], part
    assert got["items"]["used"] == 3 and got["settings"]["captions"] == 4
    expected, got = _figures(expected), _figures(got)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, atol=1e-5, rtol=0, err_msg=name)

    again = call(capsys, *on_ray)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "videos: 0 embedded, 3 from the cache" in again.stderr, again.stderr
    assert json.loads(again.stdout)["metrics"] == json.loads(first.stdout)["metrics"]


def test_token_features_on_ray_are_the_local_ones(data, golden_dir, ray_local, tmp_path):
    model = vp.VideoPrismBackbone.from_preset(str(golden_dir / "lvt_small.ckpt.npz"),
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    key = model_key(model, source="lvt_small", dtype="float32")
    clips = [Clip(str(data / f"v{i}.mp4")) for i in range(len(SOURCES))]
    clips.append(Clip(str(data / "v1.mp4"), 0.25, 0.75))  # a span too
    options = dict(kind="features", token_grid=2, batch_size=2, progress=False, **SAMPLING)
    local = EmbeddingCache(tmp_path / "local", key, "ds").videos(model, clips, **options)
    got = EmbeddingCache(tmp_path / "ray", key, "ds").videos(model, clips, ray=ray_local,
                                                             **options)  # fmt: skip
    assert got.embedded == local.embedded == 4 and got.ok.all() and not got.failures
    assert got.vectors.shape == local.vectors.shape and got.vectors.shape[:3] == (4, 2, 4)
    # Both stored float16: within one step of its rounding (2^-10 relative) at any size.
    np.testing.assert_allclose(got.vectors.astype(np.float32), local.vectors.astype(np.float32),
                               atol=1e-3, rtol=2e-3)  # fmt: skip
