"""The four official releases: architecture, where the weights live, and what they are.

`PRESETS` (`VideoPrismBackbone.presets`, `videoprism info`) describes each: its
`description`, `params` (parameter count), `num_frames` and `size` (height, width) it was
trained at, whether it is `multimodal`, its `source` and `license`. Each entry still holds
`resolution`, the old name of `size`, until the next release (reading it warns).
"""

from .constants import DEFAULT_SOFT_CAP
from .deprecation import renamed_keys

_BASE = dict(
    patch_size=18, hidden_dim=768, intermediate_dim=3072, num_heads=12, num_spatial_layers=12
)
_LARGE = dict(
    patch_size=18, hidden_dim=1024, intermediate_dim=4096, num_heads=16, num_spatial_layers=24
)
_COMMON = dict(
    num_temporal_layers=4, attention_logit_soft_cap=DEFAULT_SOFT_CAP, image_shape=(288, 288, 3)
)
_TEXT = dict(num_auxiliary_layers=2, vocabulary_size=32000, num_text_layers=12)
_VIDEO = dict(num_auxiliary_layers=0)

# The large releases were trained on 8 frames (position table (8, 16, 16)), base on 16.
PRESET_CONFIGS: dict[str, dict] = {
    "videoprism_public_v1_base": dict(**_BASE, **_COMMON, **_VIDEO, num_frames=16),
    "videoprism_lvt_public_v1_base": dict(**_BASE, **_COMMON, **_TEXT, num_frames=16),
    "videoprism_public_v1_large": dict(**_LARGE, **_COMMON, **_VIDEO, num_frames=8),
    "videoprism_lvt_public_v1_large": dict(**_LARGE, **_COMMON, **_TEXT, num_frames=8),
}

# Official Hugging Face repositories and files (as in the official `models.py`).
PRESET_FILES: dict[str, tuple[str, str]] = {
    "videoprism_public_v1_base": (
        "google/videoprism-base-f16r288",
        "flax_base_f16r288_repeated.npz",
    ),
    "videoprism_lvt_public_v1_base": (
        "google/videoprism-lvt-base-f16r288",
        "flax_lvt_base_f16r288_repeated.npz",
    ),
    "videoprism_public_v1_large": (
        "google/videoprism-large-f8r288",
        "flax_large_f8r288_repeated.npz",
    ),
    "videoprism_lvt_public_v1_large": (
        "google/videoprism-lvt-large-f8r288",
        "flax_lvt_large_f8r288_repeated.npz",
    ),
}

# The LvT text vocabulary: T5's English SentencePiece model ("c4_en" in the official code).
TOKENIZER_URL = "https://storage.googleapis.com/t5-data/vocabs/cc_en.32000/sentencepiece.model"
TOKENIZER_SHA256: str | None = None  # not published; the file is checked by loading it

_LICENSE = "weights CC-BY 4.0, code Apache 2.0 (google-deepmind/videoprism)"
_DESCRIPTIONS = {
    "videoprism_public_v1_base": "ViT-B factorized video encoder (spatiotemporal features)",
    "videoprism_lvt_public_v1_base": "ViT-B video + CoCa text encoders (aligned embeddings)",
    "videoprism_public_v1_large": "ViT-L factorized video encoder (spatiotemporal features)",
    "videoprism_lvt_public_v1_large": "ViT-L video + CoCa text encoders (aligned embeddings)",
}
_PARAMS = {
    "videoprism_public_v1_base": 114_365_184,
    "videoprism_lvt_public_v1_base": 247_623_424,
    "videoprism_public_v1_large": 353_965_056,
    "videoprism_lvt_public_v1_large": 579_877_120,
}

PRESETS: dict[str, dict] = {
    name: renamed_keys(
        {
            "description": _DESCRIPTIONS[name],
            "params": _PARAMS[name],
            "num_frames": config["num_frames"],
            "size": config["image_shape"][:2],
            "multimodal": config.get("num_text_layers", 0) > 0,
            "source": f"hf://{PRESET_FILES[name][0]}/{PRESET_FILES[name][1]}",
            "license": _LICENSE,
        },
        {"resolution": "size"},
        f"VideoPrismBackbone.presets[{name!r}]",
    )
    for name, config in PRESET_CONFIGS.items()
}
