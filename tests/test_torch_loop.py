"""On PyTorch the models are `torch.nn.Module`s: a plain PyTorch training loop works on
them and gives the numbers of Keras' own `fit` step."""

import keras
import numpy as np
import pytest
from helpers import TINY_LVT, outputs, random_text, random_video

from videoprism_keras import VideoPrismBackbone
from videoprism_keras.finetune import VideoPrismContrastive, contrastive_loss

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(keras.backend.backend() != "torch", reason="the PyTorch backend only"),
]
CONFIG = dict(TINY_LVT, num_spatial_layers=1, num_text_layers=1)


def _model():
    keras.utils.set_random_seed(0)
    return VideoPrismContrastive(VideoPrismBackbone(**CONFIG), name="clip")


def test_a_plain_pytorch_loop_matches_keras_fit():
    import torch

    ids, mask = random_text(batch=4)
    batch = {"pixel_values": random_video(batch=4), "token_ids": ids, "padding_mask": mask}

    keras_model = _model()
    keras_model.compile(optimizer=keras.optimizers.SGD(0.1))
    keras_model.fit(batch, batch_size=4, epochs=1, verbose=0, shuffle=False)

    model = _model()
    assert isinstance(model, torch.nn.Module) and isinstance(model.backbone, torch.nn.Module)
    params = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in params) == sum(
        int(np.prod(v.shape)) for v in model.trainable_variables
    )
    optimizer = torch.optim.SGD(params, lr=0.1)
    inputs = {k: torch.as_tensor(v) for k, v in batch.items()}
    optimizer.zero_grad()
    loss = contrastive_loss(model(inputs, training=True))
    loss.backward()
    optimizer.step()
    for a, b in zip(keras_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # state_dict round trip into a fresh model of the same name (keys are variable paths).
    # Keras makes a layer's parameter table on first use: parameters() before loading.
    fresh = VideoPrismContrastive(VideoPrismBackbone(**CONFIG), name="clip")
    list(fresh.parameters())
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(outputs(fresh, batch), outputs(model, batch))
