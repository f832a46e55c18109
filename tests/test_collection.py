"""The generated collection's ground truth (tests/collection.py) is what its files show: a
planted segment's frames are the long video's at the recorded times, a copy's frames are
its original's at the recorded offset, and no two sources look alike."""

import numpy as np
import pytest
from collection import FPS, KINDS

# Frames are compared shrunk to this size (width, height): what a copy keeps of a picture,
# without the codec's noise (a low-bitrate copy of a fractal's fine detail is mostly noise).
SMALL = (32, 24)
# Mean absolute difference (0-255) under which two shrunk frames are the same picture (a
# low-bitrate or rescaled copy differs by up to about 10; two sources by 40 or more).
SAME = 16.0


def _frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.reformat(*SMALL, "rgb24").to_ndarray().astype(np.float32)
                for frame in container.decode(video=0)]  # fmt: skip


@pytest.fixture(scope="module")
def decoded(collection):
    return {path: _frames(path) for path in collection.paths}


def _at(frames: list[np.ndarray], seconds: float) -> np.ndarray:
    return frames[min(round(seconds * FPS), len(frames) - 1)]


def test_collection_has_every_kind_of_copy_and_long_videos(collection):
    assert {copy.kind for copy in collection.copies} == set(KINDS)
    assert len(collection.segments) >= 14
    for path, seconds in collection.durations.items():
        assert path.is_file()
        if path.parent.name == "long":
            assert seconds >= 40


def test_planted_segments_are_the_long_videos_frames_at_their_times(collection, decoded):
    for segment in collection.segments:
        query, video = decoded[segment.query], decoded[segment.video]
        length = segment.end_s - segment.start_s
        assert len(query) == round(length * FPS)
        for t in (0.0, length / 2, length - 0.1):
            difference = np.abs(_at(query, t) - _at(video, segment.start_s + t)).mean()
            assert difference < SAME, (segment.source, t, difference)


def test_planted_segments_look_like_no_other_segment(collection, decoded):
    middles = {s.source: _at(decoded[s.query], (s.end_s - s.start_s) / 2)
               for s in collection.segments}  # fmt: skip
    for source, frame in middles.items():
        for other, other_frame in middles.items():
            if other != source:
                assert np.abs(frame - other_frame).mean() > 2 * SAME, (source, other)


def test_planted_copies_show_the_originals_frames_at_their_offset(collection, decoded):
    """Every copy that keeps the picture whole (all but crop) matches its original's frame
    at the offset."""
    for copy in collection.copies:
        if copy.kind == "crop" or copy.seconds < 1:
            continue
        a, b = decoded[copy.a.path], decoded[copy.b.path]
        t = (copy.b.start_s + copy.b.end_s) / 2
        same = np.abs(_at(b, t) - _at(a, t + copy.offset_s)).mean()
        assert same < SAME, (copy, same)
