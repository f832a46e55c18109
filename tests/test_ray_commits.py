"""The Ray driver's commits by time and size, end to end on a local Ray instance (2 CPUs),
with the null pipeline (`apps/ray_null.py`: blank clips, a model that returns vectors at
once): a thousand clips in a few commits, each exactly once (into a local folder and
into the loopback S3 of tests/s3.py), and a run that dies mid-job finished by the next
one without embedding a committed clip again."""

import functools
from collections import Counter

import pytest
from ray_helpers import SAMPLING, preset

import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
from videoprism_keras.apps import ray_pipeline as rp
from videoprism_keras.apps.index import IndexWriter
from videoprism_keras.apps.ray_null import NullEncoder, blank_rows

ray = pytest.importorskip("ray")
FILES, CLIPS = 12, 100  # clips per file: 1,200 in all, 19 actor batches of 64


@pytest.fixture(params=["local", "s3"])
def index(request, tmp_path):
    """A new index in a local folder, or in a bucket of the loopback S3."""
    if request.param == "local":
        return VideoIndex(tmp_path / "ix")
    server = request.getfixturevalue("s3_server")
    return VideoIndex(f"s3://{server.bucket()}/ix", storage_options=server.options())


@pytest.fixture(scope="module")
def model(golden_dir):
    name, overrides = preset(golden_dir)
    return vp.VideoPrismBackbone.from_preset(name, **overrides)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("null") / "videos"
    folder.mkdir()
    for i in range(FILES):  # the null decoder does not open them
        (folder / f"{i:02d}.mp4").write_bytes(b"x" * (i + 1))
    return folder


@pytest.fixture()
def counted(monkeypatch):
    """The rows of each `IndexWriter.commit` of clips; `fail_after` commits, one raises
    (the driver dies there: what waited for that commit is lost)."""
    commit, rows = IndexWriter.commit, []

    def counting(writer, files, *args, **kwargs):
        if len(rows) == counting.fail_after:
            raise RuntimeError("the driver dies here")
        commit(writer, files, *args, **kwargs)
        rows.append(len(files))

    counting.fail_after, counting.rows = None, rows
    monkeypatch.setattr(IndexWriter, "commit", counting)
    return counting


def _options(**commits):
    # Time never triggers a commit here: the count of commits depends on sizes only.
    return rp.RayOptions(batch_size=64, encoder=NullEncoder,
                         decoder=functools.partial(blank_rows, clips=CLIPS),
                         **{"commit_seconds": 600.0, **commits})  # fmt: skip


def _check_whole(index):
    """Every clip once, each file's last clip (and only it) marked."""
    table = index.to_arrow().select(["id", "file_id", "start_s", "last_clip"]).to_pylist()
    assert len({row["id"] for row in table}) == len(table) == FILES * CLIPS
    marked = Counter(row["file_id"] for row in table if row["last_clip"])
    assert len(marked) == FILES and set(marked.values()) == {1}
    last_start = (CLIPS - 1) * 1.0
    assert all(row["start_s"] == last_start for row in table if row["last_clip"])


def test_a_thousand_clips_in_a_few_commits_each_once(ray_local, model, videos, index,
                                                      counted):  # fmt: skip
    run = rp.index_on_ray(model, [videos], index, 1.0, **SAMPLING,
                          options=_options(commit_clips=300))  # fmt: skip
    assert len(run) == FILES * CLIPS and run.skipped == 0 and not run.failures
    _check_whole(index)
    # The first batch at once, then one commit per >= 300 clips waiting (up to twice that
    # and a batch if they came while a commit ran), the rest at the end: 3 to 5 commits
    # (per batch the driver gets: 12 or more), whatever the batches' sizes.
    assert 3 <= len(counted.rows) <= 5 and sum(counted.rows) == FILES * CLIPS
    assert counted.rows[0] < 300 and all(n >= 300 for n in counted.rows[1:-1])
    # Table versions: its creation, the commits, at most one marking of late last clips
    # per commit, the writer's closing maintenance pass (a version or two).
    assert index.stats().version <= 1 + 2 * len(counted.rows) + 2


def test_a_run_that_dies_mid_job_is_finished_by_the_next(ray_local, model, videos, tmp_path,
                                                          counted):  # fmt: skip
    index = VideoIndex(tmp_path / "ix")
    # The first batch, then two commits of 150 clips or more (each under half the run's):
    # the fourth dies.
    counted.fail_after = 3
    with pytest.raises(RuntimeError, match="the driver dies here"):
        rp.index_on_ray(model, [videos], index, 1.0, **SAMPLING,
                        options=_options(commit_clips=150))  # fmt: skip
    held = len(VideoIndex(index.uri))
    assert held == sum(counted.rows) and 300 < held < FILES * CLIPS
    counted.fail_after = None
    again = rp.index_on_ray(model, [videos], index, 1.0, **SAMPLING,
                            options=_options(commit_clips=150))  # fmt: skip
    # Nothing committed is embedded again; everything else is, once.
    assert again.skipped == held and len(again) == FILES * CLIPS - held
    _check_whole(index)
