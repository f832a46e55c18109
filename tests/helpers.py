"""Small shared helpers for the model tests."""

import keras
import numpy as np

# A tiny configuration, in the proportions of the real ones, that runs in milliseconds.
TINY = dict(
    num_frames=4,
    patch_size=4,
    hidden_dim=16,
    intermediate_dim=32,
    num_heads=2,
    num_spatial_layers=2,
    num_temporal_layers=1,
    num_auxiliary_layers=0,
    attention_logit_soft_cap=5.0,
    image_shape=(16, 16, 3),
)
TINY_LVT = dict(TINY, num_auxiliary_layers=1, vocabulary_size=50, num_text_layers=2)


def to_numpy(x):
    if isinstance(x, np.ndarray):  # e.g. what `predict` returns
        return x.astype("float32")
    # Detached first: PyTorch refuses to convert a tensor that requires grad.
    return keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.stop_gradient(x), "float32"))


def random_video(batch=2, frames=4, size=16, seed=0):
    return (
        np.random.default_rng(seed).uniform(size=(batch, frames, size, size, 3)).astype("float32")
    )


def random_text(batch=3, length=7, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(batch, length)).astype("int32")
    lengths = rng.integers(1, length + 1, size=batch)
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    return ids * mask, mask


def gradients(variables, loss_fn):
    """d loss_fn() / d variables as numpy arrays, on the current backend (tests only)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss_fn()

        # One compiled program: eager JAX compiles every op of the model on its own.
        return [np.asarray(g) for g in jax.jit(jax.grad(loss))([v.value for v in variables])]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, [v.value for v in variables])
        return [np.asarray(tf.convert_to_tensor(g)) for g in grads]  # IndexedSlices too
    for v in variables:
        v.value.grad = None
    loss_fn().backward()
    return [v.value.grad.detach().cpu().numpy() for v in variables]


def outputs(model, inputs, training=False):
    """`model(inputs)` as numpy (a dict stays a dict); compiled once on JAX (see above)."""
    if keras.backend.backend() == "jax":
        import jax

        variables = model.variables
        key = (len(variables), training)
        cache = model.__dict__.setdefault("_test_compiled", {})
        if key not in cache:

            def run(values, inputs):
                mapping = list(zip(variables, values, strict=True))
                with keras.StatelessScope(state_mapping=mapping):
                    return model(inputs, training=training)

            cache[key] = jax.jit(run)
        result = cache[key]([v.value for v in variables], inputs)
    else:
        result = model(inputs, training=training)
    return keras.tree.map_structure(to_numpy, result)


def openvino_float32_mismatches(monkeypatch):
    """Every engine build from now on fails as a model whose OpenVINO float32 does not
    match Keras does (`engine.build.EngineMismatch`), before any export."""
    from videoprism_keras.engine.build import EngineMismatch
    from videoprism_keras.engine.session import EngineVideo

    def mismatch(self, shape, clips):
        raise EngineMismatch("OpenVINO's float32 of the exported video tower does not match")

    monkeypatch.setattr(EngineVideo, "runner", mismatch)
