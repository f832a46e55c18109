"""How well `VideoIndex.copies` finds the planted copies of the generated collection
(tests/collection.py): re-encoded at a low bitrate, rescaled, trimmed, inserted into other
videos (and each planted segment inside its long video). The issue's bar: precision and
recall of at least 0.95 and offsets within one index stride; cropped copies are measured
and held only loosely. The figures print with `-s`.

Recall, precision and offsets meet the bar with the default settings. Precision is what
COPY_NEIGHBOURS was chosen by: the two real clips (drumming, bikes) embed so alike with the
small random checkpoint that, with ten neighbours a window, a few seconds of one matched the
other (precision 0.92); with five, none do."""

from pathlib import Path

import pytest
from collection import INDEX_SETTINGS, KINDS

STRIDE_S = INDEX_SETTINGS["stride_seconds"]
# The bar, for every kind but crop.
BAR = 0.95
HELD_TO_BAR = tuple(kind for kind in KINDS if kind != "crop")
# Cropped copies' recall (measured, held loosely).
CROP_RECALL_FLOOR = 0.5
# Shared stretches this long must be found (every planted copy is); shorter ones (a few
# seconds where a copied stretch runs into a neighbouring segment) may be, and count as
# right when they are.
RECALL_MIN_SECONDS = 4.0
# A found copy is a planted one if it pairs the same files, their spans overlap, and its
# offset is this close (the offsets are then held to one stride, separately).
MATCH_OFFSET_S = 3 * STRIDE_S


def _key(path) -> Path:
    return Path(path).resolve()


def _offset_in(truth, copy) -> float | None:
    """`copy`'s offset in `truth`'s orientation (t in truth.b is t + offset in truth.a);
    None if they are about other files."""
    if (_key(copy.a.path), _key(copy.b.path)) == (_key(truth.a.path), _key(truth.b.path)):
        return copy.offset_s
    if (_key(copy.a.path), _key(copy.b.path)) == (_key(truth.b.path), _key(truth.a.path)):
        return -copy.offset_s
    return None


def _span_in_b(truth, copy) -> tuple[float, float]:
    same = _key(copy.b.path) == _key(truth.b.path)
    span = copy.b if same else copy.a
    return span.start_s, span.end_s


def _matches(truth, copy) -> bool:
    """Same two files, offsets close, and the spans overlap."""
    offset = _offset_in(truth, copy)
    if offset is None or abs(offset - truth.offset_s) > MATCH_OFFSET_S:
        return False
    start, end = _span_in_b(truth, copy)
    return min(end, truth.b.end_s) > max(start, truth.b.start_s)


def _span(span) -> str:
    return f"{Path(span.path).name} {span.start_s:.1f}–{span.end_s:.1f}"


@pytest.fixture(scope="module")
def found(collection_index):
    return [copy for group in collection_index.copies() for copy in group.copies]


@pytest.fixture(scope="module")
def report(collection, found):
    """Per kind: the planted copies to find, those found, the offset errors; and the found
    copies that match nothing planted."""
    expected = [t for t in collection.copies if t.seconds >= RECALL_MIN_SECONDS]
    per_kind = {kind: {"planted": 0, "found": 0, "matched": 0, "errors": []} for kind in KINDS}
    for truth in expected:
        row = per_kind[truth.kind]
        row["planted"] += 1
        hits = [c for c in found if _matches(truth, c)]
        row["found"] += bool(hits)
        if hits:
            row["errors"].append(abs(_offset_in(truth, hits[0]) - truth.offset_s))
    false = []
    for copy in found:
        truths = [t for t in collection.copies if _matches(t, copy)]
        if truths:
            per_kind[max((t.kind for t in truths), key=KINDS.index)]["matched"] += 1
        else:
            false.append(copy)
    held = sum(per_kind[kind]["matched"] for kind in HELD_TO_BAR)
    lines = [f"copies: {len(found)} found, {len(false)} matching nothing planted; precision "
             f"{held / max(held + len(false), 1):.2f} (the issue's bar: {BAR})"]  # fmt: skip
    for kind, row in per_kind.items():
        recall = row["found"] / row["planted"] if row["planted"] else float("nan")
        worst = max(row["errors"], default=float("nan"))
        lines.append(f"  {kind:9s} recall {row['found']}/{row['planted']} ({recall:.0%}), "
                     f"{row['matched']} found copies match it, worst offset error "
                     f"{worst:.2f} s")  # fmt: skip
    for truth in expected:
        if not any(_matches(truth, c) for c in found):
            lines.append(f"  missed {truth.kind}: {_span(truth.a)} ~ {_span(truth.b)} "
                         f"offset {truth.offset_s:g}")  # fmt: skip
    for copy in false:
        lines.append(f"  false: {_span(copy.a)} ~ {_span(copy.b)} offset {copy.offset_s:g} "
                     f"score {copy.score:.3f}")  # fmt: skip
    print("\n" + "\n".join(lines))
    return per_kind, false


def test_copies_recall_planted_pairs(report):
    per_kind, _ = report
    planted = sum(per_kind[kind]["planted"] for kind in HELD_TO_BAR)
    found = sum(per_kind[kind]["found"] for kind in HELD_TO_BAR)
    assert found / planted >= BAR, per_kind
    for kind in ("reencode", "rescale", "trim"):
        row = per_kind[kind]
        assert row["found"] / row["planted"] >= BAR, (kind, row)


def test_copies_precision(report):
    per_kind, false = report
    held = sum(per_kind[kind]["matched"] for kind in HELD_TO_BAR)
    assert held / (held + len(false)) >= BAR, [c.as_dict() for c in false]


def test_cropped_copies_are_mostly_found(report):
    row = report[0]["crop"]
    assert row["found"] / row["planted"] >= CROP_RECALL_FLOOR, row


def test_copies_offsets_within_one_stride(report):
    per_kind, _ = report
    for kind in HELD_TO_BAR:
        assert all(error <= STRIDE_S for error in per_kind[kind]["errors"]), kind
