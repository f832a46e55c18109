"""The Ray pipeline's stages without Ray: the decode stage gives the in-process frames bit
for bit, leaves out held clips (but tells the count), records failures; the driver marks a
file's last clip only once every clip of it is committed, in whatever order they come."""

import json

import numpy as np
import pytest
from ray_helpers import SAMPLING, library

from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps import ray_pipeline as rp
from videoprism_keras.apps.identity import identify
from videoprism_keras.video import iter_clips, load_video
from videoprism_keras.video.clip_rows import as_model_input, decode_rows


@pytest.fixture(scope="module")
def videos(tmp_path_factory, media_dir):
    return library(tmp_path_factory.mktemp("stages") / "videos", media_dir, bad=True)


def test_decode_rows_are_the_in_process_frames(videos):
    path = str(videos / "drums.mp4")
    clips = list(iter_clips(path, 2.0, None, **SAMPLING))
    rows = list(decode_rows({"source": path, "path": path}, **SAMPLING, clip_seconds=2.0))
    assert [r["status"] for r in rows] == ["clip"] * 5 and [r["last"] for r in rows][-2:] == [
        False, True]  # fmt: skip
    for row, clip in zip(rows, clips, strict=True):
        assert row["frames"].dtype == np.uint8 and (row["start_s"], row["end_s"]) == (
            clip.start_s, clip.end_s)  # fmt: skip
        np.testing.assert_array_equal(as_model_input(row["frames"]), clip.frames)  # bit for bit
    (whole,) = decode_rows({"source": path, "path": path}, **SAMPLING)
    np.testing.assert_array_equal(as_model_input(whole["frames"]), load_video(path, **SAMPLING))
    # Held clips are left out; a held last clip still comes, to tell the file's count.
    held = json.dumps([[clips[0].start_s, clips[0].end_s], [clips[4].start_s, clips[4].end_s]])
    rows = list(decode_rows({"source": path, "path": path, "held": held}, **SAMPLING,
                            clip_seconds=2.0))  # fmt: skip
    assert [(r["status"], r["ordinal"], r["last"]) for r in rows] == [
        ("clip", 1, False),
        ("clip", 2, False),
        ("clip", 3, False),
        ("held", 4, True),
    ]
    bad = str(videos / "broken.mp4")
    (failed,) = decode_rows({"source": bad, "path": bad}, **SAMPLING, clip_seconds=2.0)
    assert failed["status"] == "failed" and "not a readable video" in failed["reason"]


def _batch(rows, file_id, dim=8):
    """Rows as the model stage gives them to the driver."""
    out = {
        key: np.array([r[key] for r in rows])
        for key in ("path", "status", "reason", "start_s", "end_s", "ordinal", "last", "duration_s")
    }
    out["file_id"] = np.array([file_id] * len(rows))
    out["vector"] = np.random.default_rng(len(rows)).normal(size=(len(rows), dim)).astype("f4")
    out["poster"] = np.array([b"jpeg"] * len(rows), dtype=object)
    return out


def test_the_last_clip_is_marked_once_the_file_is_whole(videos, tmp_path):
    path = str(videos / "drums.mp4")
    file = identify(path)
    rows = [dict(r, frames=None) for r in decode_rows({"source": path, "path": file.path},
                                                      **SAMPLING, clip_seconds=2.0)]  # fmt: skip
    index = VideoIndex(tmp_path / "ix")
    writer = index.writer()
    states, run = {file.file_id: rp._FileState(set())}, rp._Run()
    marked = lambda: {r["start_s"]: r["last_clip"] for r in index.to_arrow()  # noqa: E731
                      .select(["start_s", "last_clip"]).to_pylist()}  # fmt: skip
    # Out of order, and a clip twice (a retried task): counted once.
    for chunk in ([rows[4], rows[0]], [rows[0], rows[2], rows[1]], [rows[3]]):
        batch = _batch(chunk, file.file_id)
        kinds = {s: np.flatnonzero(batch["status"] == s) for s in ("clip", "held", "failed")}
        rp._commit_batch(writer, batch, kinds, {file.file_id: file}, states, run)
        if len(marked()) < 5:  # the last clip is in, but not every clip yet
            assert not any(marked().values())
    assert sum(marked().values()) == 1 and marked()[rows[4]["start_s"]]
    assert writer.held([file])[file.file_id][1]  # a later run skips the file
