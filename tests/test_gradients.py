"""Gradients of one contrastive step on the small golden LvT checkpoint: against central
finite differences, and against the JAX gradients stored in tests/data (so the PyTorch
and TensorFlow runs of `make test` compare the backends).

Regenerate the stored gradients (JAX): `KERAS_BACKEND=jax python tests/test_gradients.py`.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import gradients, random_text, random_video

REFERENCE = Path(__file__).parent / "data" / "contrastive_gradients.json"
# Small parameters spread over both towers, the pooler and the temperature.
NAMES = (
    "log_scale",
    "video_encoder/patch_proj/bias",
    "video_encoder/temporal_norm/gamma",
    "auxiliary_encoder/layer_0/mlp/out_proj/bias",
    "video_pooler/per_dim_scale",
    "text_encoder/transformer/layer_1/attention/out_proj/bias",
    "text_encoder/norm/beta",
)


def _setup(golden_dir):
    import videoprism_keras as vp
    from videoprism_keras.finetune import VideoPrismContrastive, contrastive_loss

    backbone = vp.load_flax_checkpoint(
        golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0
    )
    model = VideoPrismContrastive(backbone, temperature=0.1, name="contrastive")
    ids, mask = random_text(batch=3, length=6, vocab=1000, seed=1)
    inputs = {"pixel_values": random_video(batch=3, seed=1), "token_ids": ids,
              "padding_mask": mask}  # fmt: skip
    by_name = {v.path.split("contrastive/")[-1]: v for v in model.weights}
    variables = [by_name[n] for n in NAMES]

    def loss():
        return contrastive_loss(model(inputs, training=True))

    return variables, loss


@pytest.fixture(scope="module")
def step(golden_dir):
    variables, loss = _setup(golden_dir)
    return variables, loss, gradients(variables, loss)


@pytest.mark.backend
def test_gradients_match_finite_differences(step):
    variables, loss, grads = step
    rng = np.random.default_rng(0)
    for variable, grad in list(zip(variables, grads, strict=True))[:4]:
        start = keras.ops.convert_to_numpy(variable)
        direction = rng.standard_normal(start.shape).astype("float32")
        eps = 1e-2
        values = []
        for sign in (1, -1):
            variable.assign(start + sign * eps * direction)
            values.append(float(keras.ops.convert_to_numpy(keras.ops.stop_gradient(loss()))))
        variable.assign(start)
        numeric = (values[0] - values[1]) / (2 * eps)
        analytic = float(np.sum(grad * direction))
        assert abs(numeric - analytic) <= 2e-2 * max(abs(analytic), 1e-2), variable.path


@pytest.mark.backend
def test_gradients_agree_with_jax(step):
    _, _, grads = step
    reference = json.loads(REFERENCE.read_text())
    for name, grad in zip(NAMES, grads, strict=True):
        expected = np.asarray(reference[name], np.float32)
        scale = np.abs(expected).max()
        assert scale > 0, name
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=name)


if __name__ == "__main__":
    import os

    from conftest import GOLDEN

    assert keras.backend.backend() == "jax" and os.environ.get("KERAS_BACKEND") == "jax"
    variables, loss = _setup(GOLDEN)
    grads = gradients(variables, loss)
    REFERENCE.write_text(json.dumps({n: g.tolist() for n, g in zip(NAMES, grads, strict=True)}))
    print(f"wrote {REFERENCE}")
