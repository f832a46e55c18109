"""Google's official Flax checkpoints (`flax_*_repeated.npz`) in and out.

The public entry points; the reading and writing are `saving`'s, the tensor names
`weight_tables`'.
"""

from . import saving
from .constants import DEFAULT_SOFT_CAP
from .model.backbone import VideoPrismBackbone


def load_flax_checkpoint(path_or_mapping, attention_logit_soft_cap=DEFAULT_SOFT_CAP, **overrides):
    """Builds a `VideoPrismBackbone` from an official VideoPrism checkpoint.

    Args:
        path_or_mapping: an official `.npz` (e.g. `flax_lvt_base_f16r288_repeated.npz`),
            or a mapping of its `params/...` keys (flat, or nested like Flax variables).
        attention_logit_soft_cap: not stored in checkpoints; every release uses 50.
        **overrides: any other `VideoPrismBackbone` argument. `num_frames` or
            `image_shape` other than the checkpoint's resize its position tables.

    Everything else (layer counts, widths, heads, patch size, position grids,
    vocabulary) is read off the tensor shapes.
    """
    return saving.load_official(
        VideoPrismBackbone, path_or_mapping, attention_logit_soft_cap, **overrides
    )


def export_flax_checkpoint(model, path=None) -> dict:
    """Our weights in the official release layout (`params/...`, stacks on axis 0).

    Returns the flat dict, and writes it with `np.savez` when `path` is given, so
    the official Flax code (or `load_flax_checkpoint`) can read it back.
    """
    return saving.export_flax_checkpoint(model, path)
