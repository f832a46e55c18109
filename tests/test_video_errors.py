"""Every way a video can fail is one `VideoDecodeError` naming the file, and never hangs;
the batch loader decodes in threads, keeps order, and skips or raises on bad files."""

import os
import pickle
import sys
import threading
import time

import numpy as np
import pytest
from videos import index_of, write_audio_only, write_video

from videoprism_keras.video import (
    VideoBatchLoader,
    VideoDecodeError,
    iter_clips,
    iter_video_batches,
    load_video,
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
    assert path == str(bad) and message.startswith("VideoDecodeError") and "bad.mp4" in message


def test_batches_raise_on_a_bad_file_by_default(tmp_path, videos):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    batches = VideoBatchLoader([videos[0], bad, videos[1]], batch_size=1, size=16)
    error = no_hang(lambda: list(batches))
    assert isinstance(error, VideoDecodeError) and "bad.mp4" in str(error)
    with pytest.raises(ValueError, match="on_error"):
        VideoBatchLoader(videos, on_error="ignore")


def test_batches_with_padding_masks_arrays_and_uint8(videos):
    sources = [videos[0], np.zeros((2, 10, 10, 3), np.uint8)]
    (batch,) = iter_video_batches(sources, 2, num_frames=8, size=(24, 32), pad=True,
                                  dtype="uint8")  # fmt: skip
    assert batch["frame_padding_mask"].tolist() == [[1] * 5 + [0] * 3, [1, 1] + [0] * 6]
    assert batch["pixel_values"].shape == (2, 8, 24, 32, 3)
    assert batch["pixel_values"].dtype == np.uint8 and batch["paths"][1] == "<array>"


def test_decoding_runs_in_background_threads_while_the_consumer_works(videos, monkeypatch):
    started = []

    def slow_load(source, **options):
        started.append((time.monotonic(), threading.current_thread().name))
        time.sleep(0.05)
        return np.zeros((2, 4, 4, 3), np.float32)

    monkeypatch.setattr(loader_module, "load_video", slow_load)
    loader = VideoBatchLoader(videos, batch_size=2, workers=2, prefetch=2)
    iterator = iter(loader)
    next(iterator)
    received = time.monotonic()
    time.sleep(0.3)  # the "model" works on the first batch...
    # ...while the next two batches were decoding in the background.
    assert sum(t < received + 0.3 for t, _ in started) == 5
    assert all(name.startswith("video-decode") for _, name in started)
    assert [len(b["paths"]) for b in iterator] == [2, 1]


def test_stopping_early_does_not_wait_for_queued_videos(videos, monkeypatch):
    def slow_load(source, **options):
        time.sleep(0.2)
        return np.zeros((2, 4, 4, 3), np.float32)

    monkeypatch.setattr(loader_module, "load_video", slow_load)
    loader = VideoBatchLoader(videos * 10, batch_size=1, workers=1, prefetch=50)
    start = time.monotonic()
    for _ in loader:
        break
    assert time.monotonic() - start < 1.5  # not the 10 s that 50 queued videos would take


def test_progress_bar(videos, capsys):
    pytest.importorskip("tqdm")
    list(VideoBatchLoader(videos, batch_size=2, size=16, progress=True))
    assert "5/5" in capsys.readouterr().err
    if "tqdm" in sys.modules:
        list(VideoBatchLoader(videos, batch_size=2, size=16, progress=False))
        assert capsys.readouterr().err == ""
