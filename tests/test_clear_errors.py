"""Mistakes in the Python API named in its own words (the argument, what was expected),
not in Python's ("'int' object is not iterable") nor in a misleading one."""

import pytest
from helpers import TINY

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps.index.store import StoreError


@pytest.fixture(scope="module")
def model():
    return vp.VideoPrismBackbone(**TINY)


@pytest.mark.parametrize(
    "sources, error, says",
    [
        ([], ValueError, "sources is empty"),
        (8, TypeError, "sources must be a video file or folder"),
        ([b"a.mp4"], TypeError, r"Received: sources=\[b'a.mp4'\]"),
    ],
)
def test_add_videos_names_sources_when_it_holds_no_paths(tmp_path, model, sources, error, says):
    index = VideoIndex(tmp_path / "ix")
    with pytest.raises(error, match=says):
        index.add_videos(model, sources, num_frames=8, size=64)
    with pytest.raises(TypeError, match="sources must be"):  # the arguments swapped
        index.add_videos([tmp_path], model)
    assert len(index) == 0


def test_loading_an_index_from_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "ix").write_text("not an index")
    with pytest.raises(StoreError, match=r"is not a video index \(a file, not a folder\)"):
        VideoIndex.load(tmp_path / "ix")
    with pytest.raises(StoreError, match="no such folder"):
        VideoIndex.load(tmp_path / "missing")
