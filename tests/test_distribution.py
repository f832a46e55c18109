"""Keras' distribution API on JAX with 4 virtual CPU devices: one training step of each
task model sharded (DataParallel; ModelParallel with the backbone's layout map) equals
the one-device step. In a subprocess: XLA_FLAGS must be set before JAX starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("distributed_step.py")


def test_sharded_steps_equal_the_single_device_step():
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}  # fmt: skip
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("qkv_kernel_spec") == ["None", "model"]  # the layout map was used
    assert len(result) == 3
    for name, figures in result.items():
        assert figures["max_update"] > 1e-2, name  # the step did move the weights
        assert figures["max_difference"] < 1e-5, (name, figures)
