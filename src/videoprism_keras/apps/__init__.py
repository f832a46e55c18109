"""What people do with VideoPrism: embed videos, label them zero-shot, search them."""

from .embedding import Embeddings, embed_videos, find_videos
from .index import IndexedClip, SearchHit, VideoIndex
from .zero_shot import ZeroShotClassifier

__all__ = [
    "Embeddings",
    "IndexedClip",
    "SearchHit",
    "VideoIndex",
    "ZeroShotClassifier",
    "embed_videos",
    "find_videos",
]
