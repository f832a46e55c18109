"""The four official releases: their architectures (weights come from `from_preset`)."""

_BASE = dict(
    patch_size=18, hidden_dim=768, intermediate_dim=3072, num_heads=12, num_spatial_layers=12
)
_LARGE = dict(
    patch_size=18, hidden_dim=1024, intermediate_dim=4096, num_heads=16, num_spatial_layers=24
)
_COMMON = dict(num_temporal_layers=4, attention_logit_soft_cap=50.0, image_shape=(288, 288, 3))
_TEXT = dict(num_auxiliary_layers=2, vocabulary_size=32000, num_text_layers=12)
_VIDEO = dict(num_auxiliary_layers=0)

# The large releases were trained on 8 frames (position table (8, 16, 16)), base on 16.
PRESET_CONFIGS = {
    "videoprism_public_v1_base": dict(**_BASE, **_COMMON, **_VIDEO, num_frames=16),
    "videoprism_lvt_public_v1_base": dict(**_BASE, **_COMMON, **_TEXT, num_frames=16),
    "videoprism_public_v1_large": dict(**_LARGE, **_COMMON, **_VIDEO, num_frames=8),
    "videoprism_lvt_public_v1_large": dict(**_LARGE, **_COMMON, **_TEXT, num_frames=8),
}
