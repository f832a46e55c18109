"""How well `VideoIndex.moments` finds planted segments in the generated collection
(tests/collection.py): each segment on its own, embedded as a video query, should find the
stretch of the long video it was cut from, top-1, with both edges within one refinement
stride of the truth. The figures print with `-s`."""

from pathlib import Path

import pytest
from collection import INDEX_SETTINGS

from videoprism_keras.constants import MOMENT_REFINE_DIVISOR

STRIDE_S = INDEX_SETTINGS["stride_seconds"]
REFINE_STRIDE_S = STRIDE_S / MOMENT_REFINE_DIVISOR
# The bar: top-1 with both edges right on at least this share of planted segments.
BAR = 0.95


@pytest.fixture(scope="module")
def queries(collection, collection_model):
    from videoprism_keras.apps import embed_videos

    paths = [str(segment.query) for segment in collection.segments]
    return embed_videos(collection_model, paths, num_frames=INDEX_SETTINGS["num_frames"],
                        size=INDEX_SETTINGS["size"], progress=False).vectors  # fmt: skip


def _score(collection, found, tolerance_s: float, label: str) -> float:
    """The share of segments whose top moment is in the right video with both edges within
    `tolerance_s`; prints one line per segment."""
    hits, lines = 0, []
    for segment, moments in zip(collection.segments, found, strict=True):
        top = moments[0] if moments else None
        right = top is not None and Path(top.path).resolve() == segment.video.resolve()
        errors = (top.start_s - segment.start_s, top.end_s - segment.end_s) if right else None
        hit = right and max(abs(e) for e in errors) <= tolerance_s
        hits += hit
        got = f"{Path(top.path).name} {top.start_s:6.2f}–{top.end_s:6.2f}" if top else "nothing"
        lines.append(f"  {segment.source:20s} truth {segment.video.name} {segment.start_s:5.1f}–"
                     f"{segment.end_s:5.1f}  got {got}  {'hit' if hit else 'MISS'}")  # fmt: skip
    share = hits / len(collection.segments)
    print(f"\n{label}: {hits}/{len(collection.segments)} top-1 within {tolerance_s:g} s "
          f"({share:.0%})", *lines, sep="\n")  # fmt: skip
    return share


def test_coarse_moments_land_within_one_index_stride(collection, collection_index, queries):
    found = [collection_index.moments(q, top_k=1, under=collection.long_folder) for q in queries]
    assert _score(collection, found, STRIDE_S, "coarse moments") >= BAR


def test_refined_moments_land_within_one_refinement_stride(collection, collection_index,
                                                           collection_model, queries):  # fmt: skip
    found = [collection_index.moments(q, top_k=1, under=collection.long_folder,
                                      model=collection_model) for q in queries]  # fmt: skip
    assert _score(collection, found, REFINE_STRIDE_S, "refined moments") >= BAR
