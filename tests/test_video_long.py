"""Long videos: streaming and seeking give the official frames without holding the video,
and `iter_clips` cuts timed clips in one decoding pass."""

from fractions import Fraction

import numpy as np
import pytest
from videos import decode_all, index_of, write_video

from videoprism_keras import video as vio
from videoprism_keras.video import api, decode, iter_clips, load_video, sample_indices


def official(path, num_frames, size):
    """The official colab's algorithm restated: every frame in memory, then sample."""
    from PIL import Image

    frames = decode_all(path)
    picked = [frames[i] for i in sample_indices(len(frames), num_frames)]
    height, width = size
    return np.stack(
        [
            np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.LANCZOS))
            for f in picked
        ]
    )


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """600 frames (a minute at 10 fps) with a keyframe every 25 and B-frames."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    return write_video(path, frames=600, size=(48, 64), gop=25, bframes=2)


@pytest.mark.parametrize("strategy", ["stream", "seek", "auto"])
def test_every_strategy_gives_the_official_frames(long_video, strategy, monkeypatch):
    monkeypatch.setattr(api, "SEEK_ABOVE_FRAMES", 100)  # let "auto" seek this "long" video
    expected = official(long_video, 16, (24, 32))
    frames = load_video(long_video, 16, (24, 32), dtype="uint8", strategy=strategy)
    np.testing.assert_array_equal(frames, expected)
    assert [index_of(f) for f in frames] == sample_indices(600, 16).tolist()


def test_only_the_sampled_frames_are_converted_and_kept(long_video, monkeypatch):
    """Memory is bounded because nothing else is kept: count the RGB conversions."""
    calls = []
    real = decode.to_rgb
    monkeypatch.setattr(decode, "to_rgb", lambda frame: calls.append(1) or real(frame))
    for strategy in ("stream", "seek"):
        calls.clear()
        load_video(long_video, 16, (24, 32), strategy=strategy)
        assert len(calls) == 16


def test_auto_seeks_only_when_it_decodes_less(long_video, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "SEEK_ABOVE_FRAMES", 100)
    index = vio.scan(long_video)
    assert index.count == 600 and index.keyframes.tolist() == list(range(0, 600, 25))
    assert decode.seek_cost(index, sample_indices(600, 16)) < 300
    sought = []
    real = api.seek_frames
    monkeypatch.setattr(api, "seek_frames", lambda *a: sought.append(1) or real(*a))
    load_video(long_video, 16, (24, 32), strategy="auto")
    assert sought == [1]
    one_gop = write_video(tmp_path / "one_gop.mkv", frames=300, gop=1000)
    assert vio.scan(one_gop).keyframes.tolist() == [0]  # seeking would redecode the file
    sought.clear()
    frames = load_video(one_gop, 8, (48, 64), dtype="uint8", strategy="auto")
    assert sought == [] and [index_of(f) for f in frames] == sample_indices(300, 8).tolist()


@pytest.mark.parametrize("stated", [637, 590])
def test_a_wrong_container_frame_count_is_corrected(long_video, monkeypatch, stated):
    """Streaming decodes to the end: if the container's count was wrong, it resamples
    from the true count, as decoding everything would have."""

    monkeypatch.setattr(api, "_container_count", lambda path: stated)
    frames = load_video(long_video, 16, (48, 64), dtype="uint8", strategy="stream")
    assert [index_of(f) for f in frames] == sample_indices(600, 16).tolist()


def test_probe_and_scan(long_video, tmp_path):
    info = vio.probe(long_video)
    assert (info.num_frames, info.fps, info.width, info.height) == (600, 10.0, 64, 48)
    assert info.duration_s == pytest.approx(60.0, abs=0.2) and info.rotation == 0
    mkv = write_video(tmp_path / "v.mkv", frames=30)  # no frame count in Matroska
    assert vio.probe(mkv).num_frames == 30 and vio.probe(mkv, exact=False).num_frames > 0
    assert vio.scan(mkv).seconds() == pytest.approx(np.arange(30) / 10)


def test_clips_follow_the_timestamps(tmp_path):
    path = write_video(tmp_path / "clips.mp4", frames=100, fps=10)  # 10 s
    clips = list(iter_clips(path, 4, 3, num_frames=4, size=(48, 64), dtype="uint8"))
    assert [(c.start_s, c.end_s) for c in clips] == [(0, 4), (3, 7), (6, 10), (9, 10)]
    assert [index_of(f) for f in clips[1].frames] == [30, 40, 50, 60]
    assert [index_of(f) for f in clips[3].frames] == [90, 92, 95, 97]
    assert all(c.frames.shape == (4, 48, 64, 3) and c.frames.dtype == np.uint8 for c in clips)
    start, end, frames = clips[0]  # as `for start_s, end_s, frames in iter_clips(...)`
    assert (start, end, frames.shape) == (0, 4, (4, 48, 64, 3)) and frames is clips[0].frames
    assert clips[0].frame_padding_mask.tolist() == [1, 1, 1, 1]
    padded = list(iter_clips(path, 4, 3, num_frames=16, size=(24, 32), pad=True))
    assert [int(c.frame_padding_mask.sum()) for c in padded] == [16, 16, 16, 10]
    assert padded[-1].frames[10:].max() == 0 and padded[-1].frames.dtype == np.float32


def test_no_sliver_clip_at_the_end(tmp_path):
    """At 29.97 fps, 120 frames last 4.004 s: no clip for [4.0, 4.004), where no frame starts."""
    path = write_video(tmp_path / "ntsc.mp4", frames=120, fps=Fraction(30000, 1001))
    spans = [(c.start_s, round(c.end_s, 3)) for c in iter_clips(path, 2, 1, num_frames=2, size=16)]
    assert spans == [(0, 2), (1, 3), (2, 4), (3, 4.004)]


@pytest.mark.parametrize("clip, stride", [(1, None), (2, 1), (0.7, 0.3), (4, 3), (60, None)])
def test_clips_are_counted_without_decoding(tmp_path, clip, stride, monkeypatch):
    """What a progress bar's total is made of: the clips `iter_clips` will give."""
    paths = [write_video(tmp_path / "clips.mp4", frames=100, fps=10),
             write_video(tmp_path / "ntsc.mkv", frames=120, fps=Fraction(30000, 1001)),
             write_video(tmp_path / "short.mp4", frames=3, fps=10)]  # fmt: skip
    expected = [len(list(iter_clips(p, clip, stride, num_frames=2, size=16))) for p in paths]
    for module in (api, decode):  # counting must not decode, nor read every packet
        monkeypatch.setattr(module, "decoded_frames", None)
        monkeypatch.setattr(module, "scan", None)
    assert [api.count_clips(p, clip, stride) for p in paths] == expected


def test_a_clip_covering_the_video_is_load_video(tmp_path):
    path = write_video(tmp_path / "whole.mkv", frames=37, fps=12, gop=8, bframes=2)
    (clip,) = iter_clips(path, clip_seconds=60, num_frames=8, size=(24, 32), dtype="uint8")
    np.testing.assert_array_equal(clip.frames, load_video(path, 8, (24, 32), dtype="uint8"))
    assert clip.start_s == 0 and clip.end_s == pytest.approx(37 / 12, abs=1e-3)


def test_clips_of_a_variable_frame_rate_video(tmp_path):
    """Frames at irregular times (ms); the average rate would put them in wrong clips."""
    pts = [0, 40, 90, 100, 300, 310, 600, 650, 900, 1000]
    path = write_video(tmp_path / "vfr.mkv", frames=10, pts=pts)
    clips = list(iter_clips(path, 0.25, num_frames=2, size=(48, 64), dtype="uint8"))
    got = [(c.start_s, c.end_s, [index_of(f) for f in c.frames]) for c in clips]
    assert got == [
        (0.0, 0.25, [0, 2]),  # frames 0-3 start in [0, 0.25)
        (0.25, 0.5, [4, 5]),
        (0.5, 0.75, [6, 7]),
        (0.75, 1.0, [8, 8]),
        (1.0, 1.05, [9, 9]),  # the last frame lasts the median frame interval
    ]
    gaps = list(iter_clips(path, 0.1, num_frames=1, size=(48, 64), dtype="uint8"))
    # Nothing starts in [0.2, 0.3): the frame on screen then (3, shown from 0.1 s) is used.
    assert [index_of(c.frames[0]) for c in gaps][:4] == [0, 3, 3, 4]


def test_clips_take_one_decoding_pass(long_video, monkeypatch):
    passes = []
    real = api.decoded_frames
    monkeypatch.setattr(api, "decoded_frames", lambda path: passes.append(1) or real(path))
    clips = list(iter_clips(long_video, 10, 5, num_frames=4, size=(24, 32), dtype="uint8"))
    assert passes == [1] and len(clips) == 12
    assert [index_of(f) for f in clips[5].frames] == [250, 275, 300, 325]


def test_clip_arguments_and_files_are_checked_at_the_call(long_video, tmp_path):
    with pytest.raises(ValueError, match="clip_seconds"):
        iter_clips(long_video, 0)
    with pytest.raises(ValueError, match="stride_seconds"):
        iter_clips(long_video, 1, -1)
    with pytest.raises(TypeError, match="path"):
        iter_clips(np.zeros((4, 8, 8, 3), np.uint8), 1)
    with pytest.raises(vio.VideoDecodeError, match="no such file"):
        iter_clips(tmp_path / "missing.mp4", 1)


def test_load_clip_gives_the_frames_iter_clips_gave(long_video):
    clips = list(iter_clips(long_video, 7.0, 5.0, num_frames=4, size=(24, 32), dtype="uint8"))
    for clip in (clips[0], clips[3], clips[-1]):
        again = vio.load_clip(long_video, clip.start_s, clip.end_s, 4, (24, 32), dtype="uint8")
        np.testing.assert_array_equal(again, clip.frames)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_frames": 0}, "num_frames must be a positive int; got 0"),
        ({"size": (0, 8)}, "size must be positive"),
        ({"resize_mode": "stretch"}, "resize_mode must be one of"),
        ({"dtype": "float16"}, "dtype must be one of"),
    ],
)
def test_every_entry_point_checks_sampling_options_alike_before_reading(options, message):
    """One `Sampling` checks the options, so each door says the same, and no file is read
    (the path does not exist: a file error would come first otherwise)."""
    missing = "/nonexistent/video.mp4"
    calls = [
        lambda: load_video(missing, **options),
        lambda: iter_clips(missing, 5.0, **options),
        lambda: vio.VideoBatchLoader([missing], **options),
        lambda: vio.load_clip(missing, 0.0, 1.0, **options),
        lambda: vio.Sampling(**options),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
