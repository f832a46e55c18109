"""The model, one stage per module: embeddings (pixels → patches, positions),
transformer (the shared block), video_encoder (space → time), pooler, text_encoder,
and backbone (all of it)."""
