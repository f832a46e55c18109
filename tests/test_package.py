"""Package-level behaviour: the default backend, light imports, the demo."""

import os
import subprocess
import sys


def python(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], env={**environ, **env},
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_jax_is_the_default_backend_when_installed():
    code = "import videoprism_keras as vp; vp.VideoPrismBackbone; import keras; print(keras.backend.backend())"  # noqa: E501
    assert python(code) == "jax"
    assert python(code, KERAS_BACKEND="torch") == "torch"  # the user's choice wins


def test_video_and_text_need_no_keras():
    code = "import sys, videoprism_keras.video, videoprism_keras.tokenizer; print('keras' in sys.modules)"  # noqa: E501
    assert python(code) == "False"
