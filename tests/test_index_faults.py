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


def test_other_weights_under_the_same_preset_path_are_refused(model, videos, tmp_path, capsys):
    import numpy as np

    from videoprism_keras.apps import VideoIndex

    index = tmp_path / "ix"
    assert call(capsys, "index", videos / "gen0.mp4", "-o", index, *model).returncode == 0
    before = VideoIndex.load(index)
    version, rows = before.version, before.to_arrow()
    # The checkpoint replaced by other weights of the same shapes: the same arrays, nudged.
    checkpoint = model[1]
    with np.load(checkpoint) as held:
        arrays = {name: held[name] for name in held.files}
    np.savez(checkpoint, **{name: a + np.float32(1e-3) if a.dtype.kind == "f" else a
                            for name, a in arrays.items()})  # fmt: skip
    out = call(capsys, "index", videos / "gen1.mp4", "-o", index, *model)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"--preset {checkpoint}" in out.stderr and "weights differ" in out.stderr
    after = VideoIndex.load(index)
    assert after.version == version and after.to_arrow().equals(rows)  # nothing written


def test_another_configuration_is_refused_in_python(golden_dir, videos, tmp_path):
    import videoprism_keras as vp
    from videoprism_keras.apps import VideoIndex

    checkpoint = golden_dir / "video_small.ckpt.npz"
    index = VideoIndex(tmp_path / "ix")
    sampling = dict(num_frames=4, size=16, progress=False)
    one = vp.VideoPrismBackbone.from_preset(checkpoint, attention_logit_soft_cap=5.0)
    index.add_videos(one, videos / "gen0.mp4", **sampling)
    assert len(index.meta["weights_sha256"]) == 64
    other = vp.VideoPrismBackbone.from_preset(checkpoint, attention_logit_soft_cap=3.0)
    with pytest.raises(ValueError, match=r"attention_logit_soft_cap 5\.0 recorded, 3\.0 now"):
        index.add_videos(other, videos / "gen1.mp4", **sampling)
    assert len(index) == 1
    index.add_videos(one, videos / "gen1.mp4", **sampling)  # the index's own: accepted
    assert len(index) == 2


def test_an_index_without_the_weights_hash_is_still_written_to(model, videos, tmp_path, capsys):
    import numpy as np

    from videoprism_keras.apps import Embeddings, VideoIndex

    index = tmp_path / "ix"  # as indexes were before the hash: no weights_sha256 in its meta
    VideoIndex(index).add(Embeddings(np.ones((1, 32), np.float32), ["earlier"]))
    assert "weights_sha256" not in VideoIndex.load(index).meta
    out = call(capsys, "index", videos / "gen0.mp4", "-o", index, *model)
    assert out.returncode == 0, out.stderr
    assert "cannot be checked" in out.stderr and len(VideoIndex.load(index)) == 2


def test_an_index_whose_manifests_are_gone_is_refused_not_replaced(model, videos, tmp_path,
                                                                    capsys):  # fmt: skip
    from videoprism_keras.apps import VideoIndex

    index = tmp_path / "ix"
    assert call(capsys, "index", videos / "gen0.mp4", "-o", index, *model).returncode == 0
    table = index / "clips.lance"
    for manifest in (table / "_versions").glob("*.manifest"):
        manifest.unlink()
    before = sorted(p.relative_to(index) for p in index.rglob("*"))
    out = call(capsys, "index", videos / "gen1.mp4", "-o", index, *model)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "versions are gone" in out.stderr and "nothing was changed" in out.stderr
    assert f"mv {index} {index}.damaged" in out.stderr
    assert sorted(p.relative_to(index) for p in index.rglob("*")) == before  # data kept
    for folder in (index, f"file://{index}"):
        with pytest.raises(ValueError, match="versions are gone"):
            VideoIndex(folder)
    with pytest.raises(ValueError, match="versions are gone"):
        VideoIndex.load(index)


def test_a_bad_entry_of_a_ray_source_list_is_one_failure(videos, tmp_path):
    """The listing stage of the Ray pipeline, on the driver (no Ray started): a missing
    path, an http:// URL or an empty folder named like a video in a list is one failure,
    the rest is listed; a missing path named directly is still an error (a typo)."""
    from videoprism_keras.apps.ray_sources import listed_videos, local_sources, source_files

    (tmp_path / "x.mp4").mkdir()
    listing = tmp_path / "list.csv"
    entries = [videos / "gen0.mp4", tmp_path / "gone.mp4", "http://example.com/a.mp4",
               tmp_path / "x.mp4", videos / "gen1.mp4"]  # fmt: skip
    listing.write_text("path\n" + "".join(f"{e}\n" for e in entries))
    files, failures = source_files([listing])
    assert [f.path for f in files] == [str(videos / "gen0.mp4"), str(videos / "gen1.mp4")]
    reasons = dict(failures)
    assert set(reasons) == {str(tmp_path / "gone.mp4"), "http://example.com/a.mp4",
                            str(tmp_path / "x.mp4")}  # fmt: skip
    assert "no such file" in reasons[str(tmp_path / "gone.mp4")]
    assert "http://example.com/a.mp4" in reasons["http://example.com/a.mp4"]
    assert "folder named like a video" in reasons[str(tmp_path / "x.mp4")]
    inputs, missing = listed_videos([listing])
    assert str(videos / "gen1.mp4") in inputs and "http://example.com/a.mp4" in inputs
    assert missing == [(str(tmp_path / "gone.mp4"), "no such file or directory")]
    assert local_sources([listing, videos]) == [str(videos)]
    with pytest.raises(FileNotFoundError, match=r"gone\.mp4"):
        source_files([listing, tmp_path / "gone.mp4"])


def test_a_truncated_data_file_is_said_in_one_line_naming_the_index(model, videos, tmp_path,
                                                                    capsys):  # fmt: skip
    index = tmp_path / "ix"
    assert call(capsys, "index", videos / "gen0.mp4", "-o", index, *model).returncode == 0
    for data in (index / "clips.lance" / "data").glob("*.lance"):
        with open(data, "r+b") as f:
            f.truncate(100)
    out = call(capsys, "index", videos / "gen1.mp4", "-o", index, *model)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert f"{index} could not be read as a video index" in out.stderr
    assert "restore it from a copy" in out.stderr and "/rustc/" not in out.stderr
