"""Where each weight of a backbone lives under `keras.distribution.ModelParallel`.

The Megatron split, by variable path: projections that fan out (the fused
query/key/value, the MLP's first layer, the poolers' query and key/value) are cut
along their output columns, those that fan back in (every `out_proj`) along their
input rows, so that each attention and MLP needs one reduction. The token table is
cut along the vocabulary. Everything else (norms, position tables, the patch
projection, LoRA adapters) is small and replicated.
"""

import keras


def layout_map(
    device_mesh: keras.distribution.DeviceMesh, model_dim: str = "model", batch_dim: str = "batch"
) -> keras.distribution.LayoutMap:
    """A `keras.distribution.LayoutMap` over `device_mesh` (keras_hub's `get_layout_map`)."""
    names = tuple(device_mesh.axis_names)
    if model_dim not in names:
        raise ValueError(
            f"the device mesh has no axis {model_dim!r} to split the model along. Received: "
            f"axis_names={names}"
        )
    if batch_dim not in names:
        raise ValueError(
            f"the device mesh has no axis {batch_dim!r} for the batch. Received: axis_names={names}"
        )
    layouts = keras.distribution.LayoutMap(device_mesh)
    fan_out = r"(qkv_proj|in_proj|q_proj|kv_proj)"
    layouts[rf".*/{fan_out}/kernel$"] = (None, model_dim)
    layouts[rf".*/{fan_out}/bias$"] = (model_dim,)
    layouts[r".*/out_proj/kernel$"] = (model_dim, None)
    layouts[r".*/token_embedding/embeddings$"] = (model_dim, None)
    return layouts
