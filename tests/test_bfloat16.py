"""The bfloat16 fast mode says so when it would be slower than float32 on this machine."""

import warnings

import pytest
from helpers import TINY

import videoprism_keras as vp
from videoprism_keras.model import bfloat16

pytestmark = pytest.mark.backend


def test_the_speed_of_bfloat16_is_measured_on_this_machine():
    assert bfloat16.speedup() > 0
    name, features = bfloat16.cpu()
    assert name and set(features) <= {"AVX512-BF16", "AMX-BF16"}


def test_a_slow_bfloat16_mode_warns_once_naming_the_cpu_features(monkeypatch):
    monkeypatch.setattr(bfloat16, "speedup", lambda: 0.8)
    monkeypatch.setattr(bfloat16, "cpu", lambda: ("Some Xeon", ["AVX512-BF16"]))
    with pytest.warns(UserWarning, match=r"0\.80x float32's speed on Some Xeon \(AVX512-BF16"):
        vp.VideoPrismBackbone(**TINY, dtype="bfloat16")


@pytest.mark.parametrize(("dtype", "speedup"), [("float32", 0.5), ("bfloat16", 1.7)])
def test_no_warning_for_float32_or_a_fast_bfloat16(monkeypatch, dtype, speedup):
    monkeypatch.setattr(bfloat16, "speedup", lambda: speedup)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        vp.VideoPrismBackbone(**TINY, dtype=dtype)
