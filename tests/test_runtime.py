"""The compiled inference path the apps use: same numbers as the model, faster text."""

import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import random_video, to_numpy

import videoprism_keras as vp
from videoprism_keras.runtime import Encoder, persistent_compilation_cache, trim_padding

BACKEND = keras.backend.backend()

pytestmark = pytest.mark.backend


@pytest.fixture(scope="module")
def lvt(golden_dir):
    return vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)


def test_encoder_matches_the_model(lvt):
    encoder = Encoder(lvt)
    video = random_video()
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], "int32")
    for padding in (None, mask):
        got, expected = encoder.video(video, padding), lvt.encode_video(video, padding)
        for key in ("vision_embeddings", "frame_embeddings", "spatiotemporal_features"):
            np.testing.assert_allclose(got[key], to_numpy(expected[key]), atol=1e-5)


def test_one_encoder_serves_many_shapes(lvt):
    encoder = Encoder(lvt)
    for frames, size in [(4, 16), (6, 16), (2, 24), (4, 16)]:
        out = encoder.video(random_video(frames=frames, size=size))
        assert out["frame_embeddings"].shape == (2, frames, 32)
    for length in (64, 5, 12, 3):
        ids = np.ones((2, 64), "int32")
        mask = (np.arange(64) < length).astype("int32")[None].repeat(2, 0)
        assert encoder.text(ids, mask).shape == (2, 32)


def test_text_padding_is_trimmed_exactly(lvt, golden_dir):
    io = np.load(golden_dir / "lvt_small.io.npz")
    ids, mask = io["token_ids"], 1 - io["token_paddings"]
    # The tokenizer pads to 64; the compiled tower sees only the columns that matter.
    ids64 = np.pad(ids, [(0, 0), (0, 64 - ids.shape[1])])
    mask64 = np.pad(mask, [(0, 0), (0, 64 - mask.shape[1])])
    trimmed_ids, _ = trim_padding(ids64, mask64)
    assert trimmed_ids.shape[1] == max(8, 1 << (int(mask.sum(1).max()) - 1).bit_length())
    np.testing.assert_allclose(Encoder(lvt).text(ids64, mask64), io["text_embeddings"], atol=1e-5)


@pytest.mark.parametrize(
    "lengths, width, kept", [([3, 5], 64, 8), ([9, 2], 64, 16), ([64], 64, 64), ([0, 0], 64, 8)]
)
def test_trim_padding_keeps_a_power_of_two(lengths, width, kept):
    mask = (np.arange(width)[None] < np.array(lengths)[:, None]).astype("int32")
    ids, trimmed = trim_padding(mask * 7, mask)
    assert ids.shape == trimmed.shape == (len(lengths), kept)
    assert trimmed.sum() == mask.sum()


def test_bfloat16_models_give_float32_arrays(lvt):
    fast = vp.VideoPrismBackbone.from_config({**lvt.get_config(), "dtype": "bfloat16"})
    fast.set_weights(lvt.get_weights())
    out = Encoder(fast).video(random_video())
    assert {v.dtype for v in out.values()} == {np.dtype("float32")}
    exact = Encoder(lvt).video(random_video())["vision_embeddings"]
    np.testing.assert_allclose(out["vision_embeddings"], exact, atol=0.02)


@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
def test_inference_gemm_matches_the_training_one(activation):
    """PyTorch runs `linear` through oneDNN without autograd and through addmm with it."""
    import keras

    from videoprism_keras.model.kernels import linear

    rng = np.random.default_rng(0)
    x, kernel, bias = (rng.normal(size=s).astype("float32") for s in ((2, 5, 48), (48, 80), (80,)))
    expected = x @ kernel + bias
    if activation == "gelu":
        expected = expected * 0.5 * (1 + np.vectorize(math.erf)(expected / math.sqrt(2)))
    elif activation == "relu":
        expected = np.maximum(expected, 0)
    args = [keras.ops.convert_to_tensor(a) for a in (x, kernel, bias)]
    if keras.backend.backend() == "torch":
        import torch

        from videoprism_keras.model.kernels import _onednn_linear

        with torch.inference_mode():
            assert _onednn_linear(args[0], args[1])
            assert not _onednn_linear(args[0], args[1][:, :40])  # strided: addmm
            np.testing.assert_allclose(to_numpy(linear(*args, activation)), expected, atol=2e-5)
        assert not _onednn_linear(args[0], args[1])  # autograd on: addmm
    np.testing.assert_allclose(to_numpy(linear(*args, activation)), expected, atol=2e-5)


def test_freed_memory_is_kept_on_linux_unless_turned_off(monkeypatch):
    from videoprism_keras.runtime import OPT_OUT, keep_freed_memory

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
    keep_freed_memory.cache_clear()
    monkeypatch.setenv(OPT_OUT, "0")
    assert keep_freed_memory() is False
    keep_freed_memory.cache_clear()


# A second process finds the first one's compiled program on disk (JAX only).
_COMPILE_TWICE = """
import jax, numpy as np
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda name, **kw: hits.append(name))
import keras
from helpers import TINY, random_video
import videoprism_keras as vp
from videoprism_keras.runtime import Encoder, persistent_compilation_cache
keras.utils.set_random_seed(0)
folder = persistent_compilation_cache()
if folder:  # the tiny model compiles faster than the threshold worth a disk read
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
Encoder(vp.VideoPrismBackbone(**TINY)).video(random_video(batch=1))
print(folder, sum("cache_hits" in name for name in hits))
"""


def test_a_second_process_reuses_the_compiled_program(tmp_path):
    if BACKEND != "jax":
        pytest.skip("only JAX keeps compiled programs on disk")
    env = {**os.environ, "VIDEOPRISM_CACHE": str(tmp_path), "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}  # fmt: skip
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", _COMPILE_TWICE], env=env, text=True, capture_output=True, check=True
    ).stdout.split()
    runs = [run(), run()]
    assert runs[0] == [str(tmp_path / "xla"), "0"]
    assert runs[1][0] == str(tmp_path / "xla") and int(runs[1][1]) >= 1


def test_the_compilation_cache_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("VIDEOPRISM_COMPILATION_CACHE", "0")
    assert persistent_compilation_cache.__wrapped__() is None  # the uncached function
