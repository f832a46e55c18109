"""What a fault trial of `videoprism index` found, replayed on the small checkpoint and
generated videos: one bad source among good ones, another model under the same preset
path, an index whose manifests are gone."""

import shutil

import pytest
from cli_helpers import call
from videos import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for i in range(2):
        write_video(folder / f"gen{i}.mp4", frames=20 + 10 * i, size=(32, 32))
    return folder


@pytest.fixture()
def model(golden_dir, tmp_path):
    """The small video model, from a copy of its checkpoint that a test may overwrite."""
    checkpoint = tmp_path / "model.npz"
    shutil.copy(golden_dir / "video_small.ckpt.npz", checkpoint)
    return ["--preset", checkpoint, "--soft-cap", "5", "--num-frames", "4", "--size", "16",
            "--no-progress"]  # fmt: skip


def test_a_folder_named_like_a_video_is_reported_and_skipped(model, videos, tmp_path, capsys):
    from videoprism_keras.apps import VideoIndex

    sources = tmp_path / "sources"
    shutil.copytree(videos, sources)
    (sources / "x.mp4").mkdir()  # inside a folder walked
    (tmp_path / "y.mp4").mkdir()  # and named as a source
    out = call(capsys, "index", sources, tmp_path / "y.mp4", "-o", tmp_path / "ix", *model)
    assert out.returncode == 0, out.stderr
    assert "x.mp4: a folder named like a video" in out.stderr
    assert "y.mp4: a folder named like a video" in out.stderr
    index = VideoIndex.load(tmp_path / "ix")
    assert sorted(p.rsplit("/", 1)[1] for p in index.paths) == ["gen0.mp4", "gen1.mp4"]
