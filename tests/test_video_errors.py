"""Every way a video can fail is one `VideoDecodeError` naming the file, and never hangs;
the batch loader decodes in threads, keeps order, and skips or raises on bad files."""

import io
import os
import pickle
import sys
import threading
import warnings

import numpy as np
import pytest
from videos import frame_image, index_of, write_audio_only, write_video, write_with_audio

from videoprism_keras.video import (
    VideoBatchLoader,
    VideoDecodeError,
    iter_clips,
    iter_video_batches,
    load_video,
    scan,
)
from videoprism_keras.video import loader as loader_module


def no_hang(fn, seconds=30):
    """Runs `fn` in a thread: the test fails (instead of hanging) if it does not finish."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as err:
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} hung for {seconds} s"
    return result.get("error")


def write_no_frames(path):
    """A Matroska file whose video stream holds no frame (its audio stream does)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=8000)
        for i in range(4):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def make_bad(tmp_path, case):
    """Returns (path, words the error must contain)."""
    path = tmp_path / f"{case}.mp4"
    if case == "missing":
        return path, "no such file"
    if case == "directory":
        path.mkdir()
        (path / "readme.txt").write_text("no images here")
        return path, "directory"
    if case == "text":
        path.write_text("hello, I am not a video")
        return path, "not a readable video"
    if case == "empty":
        path.write_bytes(b"")
        return path, "empty"
    if case == "audio_only":
        return write_audio_only(tmp_path / "audio_only.m4a"), "no video stream"
    if case == "no_frames":
        return write_no_frames(tmp_path / "no_frames.mkv"), "zero decodable frames"
    if case == "truncated":  # the index (moov) is written last: it is cut off
        full = write_video(tmp_path / "full.mp4", frames=60, size=(64, 64)).read_bytes()
        path.write_bytes(full[: len(full) * 3 // 10])
        return path, "not a readable video"
    if case == "truncated_faststart":  # the index comes first and lists frames cut off
        full = write_video(tmp_path / "fs.mp4", frames=60, size=(64, 64),
                           options={"movflags": "faststart"}).read_bytes()  # fmt: skip
        path.write_bytes(full[: len(full) * 3 // 10])
        return path, "truncated"
    if case == "fifo":
        os.mkfifo(path)  # opening a pipe for reading would block forever
        return path, "not a regular file"
    if case == "bad_gif":
        path = tmp_path / "bad.gif"
        path.write_text("GIF89a? no")
        return path, "not a readable image"
    raise AssertionError(case)


CASES = ["missing", "directory", "text", "empty", "audio_only", "no_frames", "truncated",
         "truncated_faststart", "fifo", "bad_gif"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_raise_one_clear_error_and_never_hang(tmp_path, case):
    if case == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    path, words = make_bad(tmp_path, case)
    for strategy in ("stream", "seek"):
        error = no_hang(lambda s=strategy: load_video(path, 4, (16, 16), strategy=s))
        assert isinstance(error, VideoDecodeError) and isinstance(error, ValueError), error
        assert str(path) in str(error) and error.path == str(path)
        assert words in str(error), str(error)
    if case not in ("bad_gif", "directory"):
        error = no_hang(lambda: list(iter_clips(path, 1.0, size=16)))
        assert isinstance(error, VideoDecodeError) and words in str(error), error


def damage(tmp_path, suffix, codec, how):
    """A healthy 6 s video and a copy cut at 60 % of its bytes, or with 300 random bytes
    written over its middle, as a broken download or disk leaves them."""
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this PyAV build")
    healthy = write_video(tmp_path / f"healthy.{suffix}", frames=60, size=(64, 64), codec=codec,
                          gop=10)  # fmt: skip
    data = bytearray(healthy.read_bytes())
    if how == "truncated":
        data = data[: len(data) * 6 // 10]
    else:
        middle = len(data) // 2
        data[middle : middle + 300] = np.random.default_rng(0).bytes(300)
    path = tmp_path / f"{how}.{suffix}"
    path.write_bytes(bytes(data))
    return healthy, path


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("suffix, codec", [("mkv", "libx264"), ("webm", "libvpx-vp9")])
def test_cut_or_damaged_matroska_and_webm_raise(tmp_path, suffix, codec, how):
    """Matroska lists no frame count, and FFmpeg reads such files without an error: the
    packets must reach the duration the file states, and every keyframe its index lists."""
    healthy, path = damage(tmp_path, suffix, codec, how)
    for strategy in ("stream", "seek", "auto"):
        assert load_video(healthy, 4, 16, strategy=strategy).shape == (4, 16, 16, 3)
        error = no_hang(lambda s=strategy: load_video(path, 4, 16, strategy=s))
        assert isinstance(error, VideoDecodeError), (strategy, error)
        assert error.path == str(path) and how in error.cause, error
    assert len(list(iter_clips(healthy, 1.0, num_frames=2, size=16))) == 6
    error = no_hang(lambda: list(iter_clips(path, 1.0, num_frames=2, size=16)))
    assert isinstance(error, VideoDecodeError) and how in str(error), error


def test_healthy_matroska_with_a_longer_audio_track_or_no_index_loads(tmp_path):
    """The checks above must not fire on healthy files: a video track ending 3 s before
    the audio (the packets of all streams count), or a live recording, which states no
    duration and has no index to compare with."""
    longer_audio = tmp_path / "longer_audio.mkv"
    write_with_audio(longer_audio, frames=30, audio_seconds=6.0)

    class Live(io.RawIOBase):  # a pipe: the muxer cannot go back to write an index
        def __init__(self, file):
            self.file = file

        def writable(self):
            return True

        def write(self, data):
            return self.file.write(data)

    live = tmp_path / "live.mkv"
    with open(live, "wb") as file:
        write_with_audio(Live(file), frames=30, audio_seconds=1.0, format="matroska")
    for path in (longer_audio, live):
        assert scan(path).count == 30
        for strategy in ("stream", "seek"):
            frames = load_video(path, 5, (32, 32), dtype="uint8", strategy=strategy)
            assert [index_of(f) for f in frames] == [0, 6, 12, 18, 24]
        assert len(list(iter_clips(path, 1.0, num_frames=2, size=16))) == 3


def test_a_frame_the_decoder_flags_as_damaged_raises(tmp_path):
    """Garbage inside one frame's compressed data (the container is intact): MPEG-4's
    decoder conceals it but flags the frame, which must not pass as a sound one."""
    import av

    rng = np.random.default_rng(0)

    def noisy(i):
        image = frame_image(i, 64, 64)
        image[::2, ::2] = rng.integers(0, 256, (32, 32, 3), np.uint8)
        return image

    path = write_video(tmp_path / "noisy.avi", frames=30, size=(64, 64), codec="mpeg4",
                       gop=30, image=noisy)  # fmt: skip
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = packets[10]  # a P-frame: frames before it are sound
    data = bytearray(path.read_bytes())
    data[pos + size // 4 : pos + size // 2] = rng.bytes(size // 2 - size // 4)
    path.write_bytes(bytes(data))
    for strategy in ("stream", "auto"):
        error = no_hang(lambda s=strategy: load_video(path, 4, 16, strategy=s))
        assert isinstance(error, VideoDecodeError) and "damaged frame" in str(error), error
    error = no_hang(lambda: list(iter_clips(path, 1.0, num_frames=2, size=16)))
    assert isinstance(error, VideoDecodeError) and "damaged frame" in str(error), error


def test_errors_pickle_for_process_pools(tmp_path):
    error = VideoDecodeError(tmp_path / "x.mp4", "has no video stream")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.cause, str(copy)) == (error.path, error.cause, str(error))


def test_a_corrupt_image_in_a_folder_names_the_image(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "0.png")
    (tmp_path / "1.png").write_bytes(b"\x89PNG broken")
    error = no_hang(lambda: load_video(tmp_path, num_frames=2, size=8))
    assert isinstance(error, VideoDecodeError) and "1.png" in str(error)


@pytest.fixture()
def videos(tmp_path):
    return [write_video(tmp_path / f"{i}.mp4", frames=5 + i) for i in range(5)]


def test_batches_keep_order_and_skip_a_bad_file(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    loader = VideoBatchLoader([*videos[:2], bad, *videos[2:]], batch_size=2, num_frames=3,
                              size=(24, 32), on_error="skip", workers=2)  # fmt: skip
    assert len(loader) == 3
    batches = list(loader)
    assert [b["pixel_values"].shape for b in batches] == [(2, 3, 24, 32, 3)] * 2 + [
        (1, 3, 24, 32, 3)
    ]
    assert all(b["pixel_values"].dtype == np.float32 for b in batches)
    assert [p for b in batches for p in b["paths"]] == [str(p) for p in videos]
    firsts = [index_of(v[0]) for b in batches for v in b["pixel_values"]]
    assert firsts == [0] * 5
    assert len(loader.failures) == 1
    path, message = loader.failures[0]
    # The path once, beside its reason: the reason does not repeat it.
    assert path == str(bad) and "not a readable video" in message and "bad.mp4" not in message


def test_batches_raise_on_a_bad_file_by_default(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    batches = VideoBatchLoader([videos[0], bad, videos[1]], batch_size=1, size=16)
    error = no_hang(lambda: list(batches))
    assert isinstance(error, VideoDecodeError) and "bad.mp4" in str(error)
    with pytest.raises(ValueError, match="on_error"):
        VideoBatchLoader(videos, on_error="ignore")


def test_skip_records_input_errors_but_not_bugs(videos, monkeypatch):
    def load(source, sampling):
        if source == "bug":
            raise TypeError("a bug in the caller's code")
        if source == "unreadable":
            raise OSError("permission denied")
        if source == "bad":
            raise ValueError("not a video")
        return np.zeros((2, 4, 4, 3), np.float32)

    monkeypatch.setattr(loader_module, "sample", load)
    loader = VideoBatchLoader(["ok", "bad", "unreadable", "ok"], batch_size=2, on_error="skip")
    assert [len(b["paths"]) for b in loader] == [2]
    assert loader.failures == [("bad", "ValueError: not a video"),
                               ("unreadable", "OSError: permission denied")]  # fmt: skip
    loader = VideoBatchLoader(["ok", "bug", "ok"], batch_size=1, on_error="skip")
    error = no_hang(lambda: list(loader))
    assert isinstance(error, TypeError) and "bug" in str(error)


@pytest.mark.parametrize(
    "options, error",
    [({"num_frames": 2.5}, TypeError), ({"num_frames": 0}, ValueError),
     ({"dtype": "float16"}, ValueError), ({"resize_mode": "stretch"}, ValueError),
     ({"size": (0, 8)}, ValueError)],
)  # fmt: skip
def test_loader_options_are_checked_once_not_per_file(videos, options, error):
    """Else `on_error="skip"` would record every file as failed for one bad option."""
    with pytest.raises(error):
        VideoBatchLoader(videos, on_error="skip", **options)


def test_a_progress_bar_without_tqdm_warns(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    with pytest.warns(UserWarning, match="tqdm"):
        batches = list(VideoBatchLoader(videos, batch_size=5, size=16, progress=True))
    assert len(batches) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(VideoBatchLoader(videos, batch_size=5, size=16))


def test_batches_with_padding_masks_arrays_and_uint8(videos):
    sources = [videos[0], np.zeros((2, 10, 10, 3), np.uint8)]
    (batch,) = iter_video_batches(sources, 2, num_frames=8, size=(24, 32), pad=True,
                                  dtype="uint8")  # fmt: skip
    assert batch["frame_padding_mask"].tolist() == [[1] * 5 + [0] * 3, [1, 1] + [0] * 6]
    assert batch["pixel_values"].shape == (2, 8, 24, 32, 3)
    assert batch["pixel_values"].dtype == np.uint8 and batch["paths"][1] == "<array>"


def test_decoding_runs_in_background_threads_while_the_consumer_works(videos, monkeypatch):
    # The videos after the first batch may only decode once the consumer holds that batch;
    # they must all be done before it asks for the next one.
    first_received, all_decoded = threading.Event(), threading.Event()
    later, decoded, threads, lock = set(videos[2:]), [], set(), threading.Lock()

    def gated_load(source, sampling):
        threads.add(threading.current_thread().name)
        if source in later and not first_received.wait(30):
            raise RuntimeError("the first batch never reached the consumer")
        with lock:
            decoded.append(source)
            if len(decoded) == len(videos):
                all_decoded.set()
        return np.zeros((2, 4, 4, 3), np.float32)

    monkeypatch.setattr(loader_module, "sample", gated_load)
    loader = VideoBatchLoader(videos, batch_size=2, workers=2, prefetch=2)
    iterator = iter(loader)
    assert len(next(iterator)["paths"]) == 2
    first_received.set()  # the "model" works on the first batch...
    # ...while the next two batches decode in the background, without being asked for.
    assert all_decoded.wait(30)
    assert all(name.startswith("video-decode") for name in threads)
    assert [len(b["paths"]) for b in iterator] == [2, 1]


def test_stopping_early_does_not_wait_for_queued_videos(videos, monkeypatch):
    # The first video decodes at once; every later one is held until `release`.
    in_flight, release, returned = threading.Event(), threading.Event(), threading.Event()
    started = []

    def held_load(source, sampling):
        started.append(threading.current_thread())
        if len(started) > 1:
            in_flight.set()
            release.wait(30)
            returned.set()
        return np.zeros((2, 4, 4, 3), np.float32)

    monkeypatch.setattr(loader_module, "sample", held_load)
    loader = VideoBatchLoader(videos * 10, batch_size=1, workers=1, prefetch=50)
    try:
        batches = iter(loader)
        next(batches)
        assert in_flight.wait(30)  # the second video is decoding
        batches.close()  # what `break` does to the loop's iterator
        # Back while the video in flight is still held: the loop did not wait for it...
        assert not returned.is_set()
    finally:
        release.set()
    (worker,) = set(started)
    worker.join(30)
    assert not worker.is_alive()
    # ...and the videos queued behind it were dropped, not decoded: 50 were submitted.
    assert len(started) <= 2


def test_progress_bar(videos, capsys):
    pytest.importorskip("tqdm")
    list(VideoBatchLoader(videos, batch_size=2, size=16, progress=True))
    assert "5/5" in capsys.readouterr().err
    if "tqdm" in sys.modules:
        list(VideoBatchLoader(videos, batch_size=2, size=16, progress=False))
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "start_s, end_s, message",
    [
        (1.5, 0.5, "start_s=1.5 is after end_s=0.5"),
        (-1.0, 0.5, "start_s must be finite seconds"),
        (0.0, float("inf"), "end_s must be finite seconds"),
        (float("nan"), 1.0, "start_s must be finite seconds"),
        (100.0, 200.0, "start_s=100 is past the end of"),
    ],
)
def test_load_clip_refuses_a_window_outside_the_video(tmp_path, start_s, end_s, message):
    from videoprism_keras.video import load_clip

    path = write_video(tmp_path / "v.mp4", frames=20, size=(16, 16))  # 2 s at 10 fps
    with pytest.raises(ValueError, match=message):
        load_clip(path, start_s, end_s, num_frames=2, size=16)
    assert load_clip(path, 0.5, 1.5, num_frames=2, size=16).shape == (2, 16, 16, 3)
