"""The Ray pipeline's stages without Ray: the decode stage gives the in-process frames bit
for bit, leaves out held clips (but tells the count; so does the null pipeline's),
records failures; the driver marks a file's last clip only once every clip of it is
committed, in whatever order they come."""

import json
import threading

import numpy as np
import pytest
from ray_helpers import SAMPLING, library

from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps import ray_commits as rc
from videoprism_keras.apps.identity import identify
from videoprism_keras.apps.ray_null import blank_rows
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


def test_the_null_decoder_leaves_out_held_clips_as_decode_rows_does():
    held = json.dumps([[0.0, 1.0], [4.0, 5.0]])
    rows = list(blank_rows({"path": "any.mp4", "held": held}, **SAMPLING, clip_seconds=1.0,
                           clips=5))  # fmt: skip
    assert [(r["status"], r["ordinal"], r["last"]) for r in rows] == [
        ("clip", 1, False),
        ("clip", 2, False),
        ("clip", 3, False),
        ("held", 4, True),
    ]
    assert rows[0]["frames"].shape == (SAMPLING["num_frames"], *SAMPLING["size"], 3)


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
    states = {file.file_id: rc.FileState(set())}
    marked = lambda: {r["start_s"]: r["last_clip"] for r in index.to_arrow()  # noqa: E731
                      .select(["start_s", "last_clip"]).to_pylist()}  # fmt: skip
    # Each batch committed as it comes (no wait); out of order, and a clip twice (a
    # retried task): committed once.
    commits = rc.IndexCommits(writer, {file.file_id: file}, states, seconds=0)
    for chunk in ([rows[4], rows[0]], [rows[0], rows[2], rows[1]], [rows[3]]):
        commits.add(_batch(chunk, file.file_id))
        commits.wait()
        if len(marked()) < 5:  # the last clip is in, but not every clip yet
            assert not any(marked().values())
    commits.flush()
    assert commits.commits == 3 and len(index) == 5
    assert sum(marked().values()) == 1 and marked()[rows[4]["start_s"]]
    assert writer.held([file])[file.file_id][1]  # a later run skips the file


def test_clips_wait_for_their_commit_by_time_and_size(videos, tmp_path):
    """The first batch at once, then one commit per `seconds` or per `clips` waiting; a
    clip that comes twice within one commit is stored once."""
    path = str(videos / "drums.mp4")
    file = identify(path)
    rows = [dict(r, frames=None) for r in decode_rows({"source": path, "path": file.path},
                                                      **SAMPLING, clip_seconds=2.0)]  # fmt: skip
    index = VideoIndex(tmp_path / "ix")
    writer = index.writer()
    now, made = [0.0], []
    states = {file.file_id: rc.FileState(set())}
    commits = rc.IndexCommits(writer, {file.file_id: file}, states,
                              lambda files, start_s, end_s: made.append(list(start_s)),
                              seconds=2.0, clips=3, clock=lambda: now[0])  # fmt: skip
    # `wait` after each batch: the commit it started (in the commit thread) is done.
    commits.add(_batch([rows[1]], file.file_id))  # the first: at once
    commits.wait()
    assert len(made) == 1 and len(index) == 1
    now[0] = 0.5
    commits.add(_batch([rows[4], rows[0]], file.file_id))  # 0.5 s later: waits
    commits.wait()
    assert len(made) == 1 and len(index) == 1
    now[0] = 1.0
    commits.add(_batch([rows[0]], file.file_id))  # the same clip again: 3 rows wait
    commits.wait()
    assert len(made) == 2 and len(index) == 3  # committed at 3 rows, clip 0 once
    now[0] = 1.5
    commits.add(_batch([rows[2]], file.file_id))  # 0.5 s after the last commit: waits
    commits.wait()
    assert len(made) == 2
    now[0] = 3.6
    commits.add(_batch([rows[3]], file.file_id))  # 2.1 s after: committed
    commits.wait()
    assert made == [[rows[1]["start_s"]], [rows[4]["start_s"], rows[0]["start_s"]],
                    [rows[2]["start_s"], rows[3]["start_s"]]]  # fmt: skip
    commits.flush()  # nothing waits: no commit
    assert commits.commits == 3 and len(index) == 5 and len(made) == 3
    last = {r["start_s"]: r["last_clip"] for r in index.to_arrow().to_pylist()}
    # The last clip came early: marked once the file was whole.
    assert sum(last.values()) == 1 and last[rows[4]["start_s"]]


class _GatedWriter:
    """An `IndexWriter` stand-in whose first commit waits until `gate` is set."""

    def __init__(self):
        self.gate, self.sizes, self.marked = threading.Event(), [], []

    def commit(self, files, *args):
        if not self.sizes:
            assert self.gate.wait(30)
        self.sizes.append(len(files))

    def mark_complete(self, ids):
        self.marked += ids

    def record_failures(self, failures):
        pass


def test_batches_gather_while_a_commit_runs(videos):
    """A slow commit holds up neither Ray nor the driver: the clips that come meanwhile
    gather, up to the backlog, and go in the next commit, a larger one."""
    path = str(videos / "drums.mp4")
    file = identify(path)
    rows = [dict(r, frames=None) for r in decode_rows({"source": path, "path": file.path},
                                                      **SAMPLING, clip_seconds=2.0)]  # fmt: skip
    writer = _GatedWriter()
    commits = rc.IndexCommits(writer, {file.file_id: file}, {file.file_id: rc.FileState(set())},
                              seconds=60.0, clips=2, clock=lambda: 0.0)  # fmt: skip
    commits.add(_batch([rows[0]], file.file_id))  # the first: at once, and it hangs
    for row in rows[1:4]:  # 3 clips wait, fewer than RAY_COMMIT_BACKLOG x 2: no wait
        commits.add(_batch([row], file.file_id))
    assert writer.sizes == [] and commits.commits == 0
    threading.Timer(0.3, writer.gate.set).start()
    commits.add(_batch([rows[4]], file.file_id))  # 4 wait: the driver waits, then commits
    commits.flush()
    assert writer.sizes == [1, 4] and commits.commits == 2
    state = commits.states[file.file_id]  # its last clip marked in that commit
    assert state.whole and state.marked and writer.marked == []
