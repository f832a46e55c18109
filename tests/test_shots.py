"""Shots: PySceneDetect's cuts on a generated video with hard cuts at known times, the
windows made of them, and `index --shots` (in process and in the Ray decoding stage)."""

import math

import numpy as np
import pytest
from cli_helpers import call

from videoprism_keras import extras
from videoprism_keras.cli import COMMAND_MODULES, parser, requirements
from videoprism_keras.constants import SHOT_MIN_SECONDS
from videoprism_keras.video import VideoDecodeError, iter_clips
from videoprism_keras.video.clip_rows import decode_rows
from videoprism_keras.video.shots import shot_cuts, shot_windows, snap, video_shots

FPS = 10
# (lavfi source, frames): distinct moving sources one after another, so each boundary is a
# hard cut. cellauto is left out: it scrolls so fast that every frame reads as a cut.
SEGMENTS = [
    (f"testsrc2=size=160x120:rate={FPS}", 30),
    (f"mandelbrot=size=160x120:rate={FPS}", 25),
    (f"life=size=160x120:rate={FPS}:mold=10:life_color=#00ff00", 40),
    (f"testsrc=size=160x120:rate={FPS}", 20),
    (f"smptebars=size=160x120:rate={FPS}", 15),
]
CUTS = np.cumsum([n for _, n in SEGMENTS])[:-1] / FPS  # 3.0, 5.5, 9.5, 11.5
DURATION = sum(n for _, n in SEGMENTS) / FPS  # 13.0
FRAME = 1.0 / FPS
SMALL = ["--soft-cap", "5", "--num-frames", "4", "--no-progress"]


def _source_frames(spec: str, count: int) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(spec, format="lavfi") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    raise AssertionError(f"{spec} gave {len(frames)} frames, not {count}")


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """13 s at 10 fps with hard cuts at `CUTS` (one keyframe at the start only, so that a
    span's decoding starts at a seek and not at a convenient keyframe)."""
    import av

    path = tmp_path_factory.mktemp("shots") / "cuts.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18", "bf": "0", "g": "300",
                          "sc_threshold": "0"}  # fmt: skip
        for spec, count in SEGMENTS:
            for image in _source_frames(spec, count):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def preset(golden_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz"]


# ------------------------------------------------------------------ cuts
def test_shot_cuts_finds_every_hard_cut_within_one_frame(cut_video):
    cuts = shot_cuts(cut_video)
    assert cuts.dtype == np.float64 and len(cuts) == len(CUTS)
    assert np.abs(cuts - CUTS).max() <= FRAME + 1e-6


def test_a_span_decodes_only_its_frames_and_gives_only_the_cuts_inside(cut_video, monkeypatch):
    from scenedetect.backends.pyav import VideoStreamAv

    decoded = []
    read = VideoStreamAv.read

    def counting(self, decode=True):
        frame = read(self, decode)
        decoded.append(decode and frame is not False)
        return frame

    monkeypatch.setattr(VideoStreamAv, "read", counting)
    cuts = shot_cuts(cut_video, 4.0, 10.5)
    np.testing.assert_allclose(cuts, [5.5, 9.5], atol=FRAME)
    # 6.5 s of frames turned into pictures for the detector (a frame or two of margin);
    # the seek from the keyframe at 0 only decodes, it converts nothing.
    assert 63 <= sum(decoded) <= 67, sum(decoded)
    assert list(shot_cuts(cut_video, 3.2, 5.0)) == []
    np.testing.assert_allclose(shot_cuts(cut_video, end_s=4.0), [3.0], atol=FRAME)
    np.testing.assert_allclose(shot_cuts(cut_video, start_s=10.0), [11.5], atol=FRAME)


def test_bad_files_and_spans_are_refused_in_the_arguments_words(cut_video, tmp_path):
    with pytest.raises(VideoDecodeError, match=r"missing\.mp4: no such file"):
        shot_cuts(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoDecodeError, match=r"notes\.mp4: not a readable video file"):
        shot_cuts(text)
    with pytest.raises(ValueError, match=r"start_s=5 is not before end_s=4"):
        shot_cuts(cut_video, 5.0, 4.0)
    with pytest.raises(ValueError, match=r"start_s must be finite seconds.*Received: start_s=-1"):
        shot_cuts(cut_video, -1.0)
    with pytest.raises(ValueError, match=r"start_s=20 is past the end of .*cuts.mp4"):
        shot_cuts(cut_video, 20.0)
    with pytest.raises(ValueError, match=r"clip_seconds must be a positive.*Received"):
        video_shots(cut_video, 0)


# ------------------------------------------------------------------ windows and snapping
def test_long_shots_are_split_into_equal_parts_of_at_most_clip_seconds():
    windows = shot_windows([3.0, 10.0], 12.0, 4.0)
    # 0–3 fits; 3–10 (7 s) becomes two halves of 3.5 s; 10–12 fits.
    assert windows == [(0.0, 3.0), (3.0, 6.5), (6.5, 10.0), (10.0, 12.0)]
    # Exactly a whole number of clips long: no sliver of a window at the end.
    assert shot_windows([], 8.0, 2.0) == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
    for start, end in shot_windows([1.3, 7.7], 30.0, 5.0):
        assert 0 < end - start <= 5.0 + 1e-9


def test_a_shot_too_short_for_a_window_joins_its_shorter_neighbour():
    short = SHOT_MIN_SECONDS / 2
    # Between a 3 s and a 1 s shot: the flash joins the 1 s one.
    assert shot_windows([3.0, 3.0 + short, 4.0 + short], 8.0, 10.0) == [
        (0.0, 3.0), (3.0, 4.0 + short), (4.0 + short, 8.0)]  # fmt: skip
    # At either end there is one neighbour; cuts outside the video are ignored.
    assert shot_windows([short, 5.0 - short, 7.0], 5.0, 10.0) == [(0.0, 5.0)]
    assert shot_windows([-1.0, short, 2.0], 4.0, 10.0) == [(0.0, 2.0), (2.0, 4.0)]
    with pytest.raises(ValueError, match="duration_s must be a positive number of seconds"):
        shot_windows([1.0], 0.0, 2.0)


def test_snap_moves_a_time_onto_the_nearest_cut_only_within_tolerance():
    cuts = np.array([3.0, 5.5, 9.5])
    assert snap(5.3, cuts, 0.5) == 5.5
    assert snap(4.2, cuts, 0.5) == 4.2
    assert snap(9.0, cuts, 0.5) == 9.5  # exactly at the tolerance still snaps
    assert snap(1.0, [], 2.0) == 1.0
    with pytest.raises(ValueError, match="tolerance_s must be seconds"):
        snap(1.0, cuts, -0.1)


def test_explicit_windows_are_cut_as_stride_windows_are(cut_video):
    strided = list(iter_clips(cut_video, 2.0, num_frames=4, size=32))
    spans = [(c.start_s, c.end_s) for c in strided]
    given = list(iter_clips(cut_video, None, num_frames=4, size=32, windows=spans[::-1]))
    assert [(c.start_s, c.end_s) for c in given] == spans  # in order of their starts
    for a, b in zip(strided, given, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
    past = list(iter_clips(cut_video, None, num_frames=4, size=32, windows=[(12.0, 99.0)]))
    assert [(c.start_s, c.end_s) for c in past] == [(12.0, DURATION)]  # cut back to the end
    with pytest.raises(ValueError, match=r"windows\[0\] must be finite seconds"):
        iter_clips(cut_video, None, windows=[(3.0, 1.0)])


def test_the_ray_decoding_stage_cuts_at_the_shots(cut_video):
    item = {"source": str(cut_video), "path": str(cut_video)}
    rows = list(decode_rows(item, num_frames=4, size=32, clip_seconds=2.5, shots=True))
    expected = video_shots(cut_video, 2.5)
    assert [(r["start_s"], r["end_s"]) for r in rows] == expected
    assert [r["last"] for r in rows] == [False] * (len(rows) - 1) + [True]
    assert all(r["status"] == "clip" for r in rows)


# ------------------------------------------------------------------ index --shots
def _rows(index_dir):
    from videoprism_keras.apps import VideoIndex

    index = VideoIndex.load(index_dir)
    return index.meta, sorted(zip(index.start_s.tolist(), index.end_s.tolist(), strict=True))


def test_index_shots_puts_window_edges_at_the_cuts_and_keeps_to_it(cut_video, preset, tmp_path,
                                                                   capsys):  # fmt: skip
    index = tmp_path / "index"
    done = call(capsys, "index", cut_video, "-o", index, "--shots", "--clip-seconds", "2.5",
                *preset, *SMALL, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta, rows = _rows(index)
    assert meta["shots"] is True and meta["clip_seconds"] == 2.5
    edges = sorted({t for row in rows for t in row})
    for cut in CUTS:  # every cut is a window edge, and every window inside one shot
        assert min(abs(e - cut) for e in edges) <= FRAME + 1e-6, (cut, edges)
    for start, end in rows:
        assert end - start <= 2.5 + 1e-9
        assert not any(start + FRAME < c < end - FRAME for c in CUTS), (start, end)
    assert rows[0][0] == 0.0 and math.isclose(rows[-1][1], DURATION, abs_tol=1e-6)
    # Extending: the same shots skip everything; without --shots, or with a stride, refused.
    again = call(capsys, "index", cut_video, "-o", index, "--shots", *SMALL)
    assert again.returncode == 0 and f"skipped {len(rows)} already indexed" in again.stdout
    refused = call(capsys, "index", cut_video, "-o", index, "--clip-seconds", "2.5", *SMALL)
    assert refused.returncode == 2 and "was built with --shots" in refused.stderr
    assert "add --shots to extend it" in refused.stderr and "Traceback" not in refused.stderr
    stride = call(capsys, "index", cut_video, "-o", index, "--shots", "--stride-seconds", "1")
    assert stride.returncode == 2 and "--stride-seconds: with --shots" in stride.stderr
    assert _rows(index)[1] == rows


def test_a_strided_index_refuses_shots_and_the_library_says_so_too(cut_video, preset, tmp_path,
                                                                    capsys):  # fmt: skip
    from videoprism_keras import VideoPrismBackbone
    from videoprism_keras.apps import VideoIndex

    index = tmp_path / "strided"
    done = call(capsys, "index", cut_video, "-o", index, "--clip-seconds", "5", *preset, *SMALL)
    assert done.returncode == 0, done.stderr
    assert _rows(index)[0]["shots"] is False
    refused = call(capsys, "index", cut_video, "-o", index, "--shots", *SMALL)
    assert refused.returncode == 2 and "--shots: " in refused.stderr
    assert "holds windows at a fixed stride" in refused.stderr
    model = VideoPrismBackbone.from_preset(preset[1], attention_logit_soft_cap=5.0)
    with pytest.raises(ValueError, match=r"holds windows at a fixed stride.*got shots=True"):
        VideoIndex(index).add_videos(model, cut_video, 5.0, shots=True, num_frames=4)
    with pytest.raises(ValueError, match="shots=True cuts videos into shots of at most"):
        VideoIndex(tmp_path / "other").add_videos(model, cut_video, shots=True, num_frames=4)
    whole = tmp_path / "whole"
    assert call(capsys, "index", cut_video, "-o", whole, *preset, *SMALL).returncode == 0
    refused = call(capsys, "index", cut_video, "-o", whole, "--shots", *SMALL)
    assert refused.returncode == 2 and "holds whole videos, not windows at shot" in refused.stderr


def test_an_index_with_shots_refines_its_moments_and_takes_no_stride(cut_video, preset,
                                                                     tmp_path):  # fmt: skip
    from videoprism_keras import VideoPrismBackbone
    from videoprism_keras.apps import VideoIndex

    model = VideoPrismBackbone.from_preset(preset[1], attention_logit_soft_cap=5.0)
    index = VideoIndex(tmp_path / "shots")
    with pytest.raises(ValueError, match=r"no stride.*Received: stride_seconds=1\.0"):
        index.add_videos(model, cut_video, 2.5, 1.0, shots=True, num_frames=4, size=32)
    assert len(index) == 0
    index.add_videos(model, cut_video, 2.5, shots=True, num_frames=4, size=32, progress=False)
    assert index.meta["shots"] is True and index.meta["stride_seconds"] == 2.5
    query = index.vectors[len(index) // 2]
    coarse = index.moments(query, top_k=2)
    refined = index.moments(query, top_k=2, model=model)  # the index's settings, shots too
    assert coarse and len(refined) == len(coarse)
    assert all(0 <= m.start_s < m.end_s <= DURATION + 1e-6 for m in refined)


# ------------------------------------------------------------------ the extra
def test_without_pyscenedetect_shots_name_the_shots_extra(cut_video, monkeypatch):
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda p: p != "scenedetect-headless" and real(p))
    args = parser.build("", COMMAND_MODULES).parse_args(["index", "v.mp4", "-o", "i", "--shots"])
    with pytest.raises(extras.MissingExtra) as caught:
        requirements.check(args)
    assert str(caught.value).startswith("index --shots needs scenedetect-headless")
    assert '"videoprism-keras[shots]"' in str(caught.value)
    plain = parser.build("", COMMAND_MODULES).parse_args(["index", "v.mp4", "-o", "i"])
    requirements.check(plain)  # only --shots needs it
    with pytest.raises(ImportError, match=r"shot detection needs scenedetect-headless.*\[shots\]"):
        shot_cuts(cut_video)


# ------------------------------------------------------------------ on Ray
def test_index_on_ray_with_shots_writes_the_in_process_windows(cut_video, golden_dir, tmp_path):
    ray = pytest.importorskip("ray")
    import logging

    import videoprism_keras as vp
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.apps import ray_pipeline as rp

    name = str(golden_dir / "video_small.ckpt.npz")
    model = vp.VideoPrismBackbone.from_preset(name, attention_logit_soft_cap=5.0)
    sampling = {"num_frames": 4, "size": (16, 16)}
    local = VideoIndex(tmp_path / "local")
    local.add_videos(model, cut_video, 2.5, shots=True, progress=False, **sampling)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)  # fmt: skip
    try:
        on_ray = VideoIndex(tmp_path / "ray")
        added = rp.index_on_ray(model, [cut_video], on_ray, 2.5, shots=True, **sampling,
                                load_model=rp.PresetLoader(name, {"attention_logit_soft_cap": 5.0}),
                                options=rp.RayOptions(batch_size=4))  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    assert len(added) == len(local) and not added.failures
    assert on_ray.meta["shots"] is True and on_ray.meta == local.meta
    assert _rows(tmp_path / "ray")[1] == _rows(tmp_path / "local")[1]
    np.testing.assert_allclose(np.sort(on_ray.vectors, 0), np.sort(local.vectors, 0), atol=1e-5)
