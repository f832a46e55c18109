"""`videoprism moments`: its arguments and errors, both modes (an index's windows; files
streamed without one), JSON and plot, and memory that does not grow with a video's length.

Videos are made here with PyAV's bundled libav sources (distinct moving pictures), tiny
and at a few frames per second; the model is the small random LvT checkpoint, whose
embeddings still tell these sources apart."""

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import call

FPS = 4
SEGMENT = ("mandelbrot", 10.0, 18.0)  # the query's source, and where the long video has it


def lavfi_video(path: Path, parts, fps: int = FPS, size=(64, 48)) -> Path:
    """A video of lavfi sources one after the other: (source, seconds) parts, encoded as
    they are generated (nothing held)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for source, seconds in parts:
            spec = f"{source}=size={size[0]}x{size[1]}:rate={fps}"
            with av.open(spec, format="lavfi") as src:
                for i, frame in enumerate(src.decode(video=0)):
                    if i >= round(seconds * fps):
                        break
                    image = frame.to_ndarray(format="rgb24")
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("moments")
    source, start, end = SEGMENT
    long = lavfi_video(folder / "long.mp4", [("testsrc2", start), (source, end - start),
                                             ("life", 10)])  # fmt: skip
    query = lavfi_video(folder / "query.mp4", [(source, end - start)])
    lavfi_video(folder / "short.mp4", [("testsrc2", 1)])
    import av

    with av.open(str(query)) as held:  # a still of the query's source
        frame = next(f for i, f in enumerate(held.decode(video=0)) if i == 12)
        Image.fromarray(frame.to_ndarray(format="rgb24")).save(folder / "still.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return {"folder": folder, "long": long, "query": query, "short": folder / "short.mp4",
            "still": folder / "still.png", "broken": folder / "broken.png"}  # fmt: skip


@pytest.fixture(scope="module")
def model_flags(golden_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--no-progress"]


WINDOWS = ["--clip-seconds", "2", "--stride-seconds", "1"]


def _moments(capsys, *args):
    out = call(capsys, "moments", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "args, says",
    [
        (["{long}", "--text", "  "], "--text is empty"),
        (["{long}", "--video", "{folder}/nope.mp4"], "--video {folder}/nope.mp4: no such file"),
        (["{long}", "--video", "{folder}"], "is a folder: give one file"),
        (["{long}", "--image", "{query}"], "--image {query}: expected a picture"),
        (["{long}", "--image", "{broken}"], "--image {broken}: not a readable picture"),
        (["{long}", "--video", "{query}", "--where", "start_s > 1"], "--where is for an INDEX"),
        (["{long}", "--video", "{query}", "--under", "{folder}"], "--under is for an INDEX"),
        (["{short}", "--video", "{query}"], "shorter than one window (--clip-seconds 4)"),
        (["{long}", "--video", "{query}", "--clip-seconds", "30"], "--clip-seconds 30"),
        (["{folder}/gone.mp4", "--video", "{query}"], "gone.mp4: no such file"),
        (["{long}", "--video", "{query}", "--top-k", "0"], "--top-k: expected a positive"),
        (["{long}", "--video", "{query}", "--title", "t"], "--title is the --plot picture's"),
        (["{long}", "--video", "{query}", "--plot", "{folder}/t.jpg"], "expected a .png file"),
        (["{long}", "--text", "a", "--video", "{query}"], "not allowed with argument"),
        (["{long}"], "one of the arguments --text --video --image is required"),
    ],
)
def test_bad_input_is_one_clear_error_before_the_model_loads(media, args, says, capsys):
    fill = lambda text: text.format(**{k: str(v) for k, v in media.items()})  # noqa: E731
    # A preset that does not exist: the error must come before anything loads it.
    out = call(capsys, "moments", *map(fill, args), "--preset", "/nonexistent/model.npz")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and fill(says) in out.stderr, out.stderr


def test_files_streamed_give_the_planted_moment_first_as_json(media, model_flags, capsys):
    found = _moments(capsys, media["long"], "--video", media["query"], *WINDOWS, "--top-k",
                     "3", *model_flags)  # fmt: skip
    assert 1 <= len(found) <= 3
    assert all(set(m) == {"path", "start_s", "end_s", "score"} for m in found)
    scores = [m["score"] for m in found]
    assert scores == sorted(scores, reverse=True)
    best = found[0]
    _, start, end = SEGMENT
    assert best["path"] == str(media["long"])
    # Within one window (2 s) of the truth: the coarse stride is 1 s, refined finer.
    assert abs(best["start_s"] - start) <= 2 and abs(best["end_s"] - end) <= 2, best


def test_an_image_query_and_the_plot_and_the_human_lines(media, model_flags, capsys, tmp_path):
    plot = tmp_path / "timeline.png"
    out = call(capsys, "moments", media["long"], "--image", media["still"], *WINDOWS,
               "--plot", plot, *model_flags)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(re.fullmatch(r" ?-?\d\.\d{3}  \S+ \[\d+\.\d–\d+\.\d s\]", line)
                         for line in lines), lines  # fmt: skip
    from PIL import Image

    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 150
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels.std(axis=(0, 1)) > 10).any()  # drawn, not blank


def test_text_queries_run_end_to_end(media, model_flags, media_dir, capsys):
    # Plumbing only: the small checkpoint's text tower is random.
    found = _moments(capsys, media["long"], media["query"], "--text", "a fractal", *WINDOWS,
                     "--tokenizer", media_dir / "test_spm.model", *model_flags)  # fmt: skip
    assert found and {m["path"] for m in found} <= {str(media["long"]), str(media["query"])}


def _peak_rss_kib(args, env, folder: Path) -> int:
    """Runs `videoprism ARGS` in a child process → its own peak resident memory (KiB), from
    `wait4` (RUSAGE_CHILDREN would hold the largest of every child this process had)."""
    out, err = folder / "out.json", folder / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "videoprism_keras.cli", *map(str, args)],
                                 env=env, stdout=stdout, stderr=stderr)  # fmt: skip
    timer = threading.Timer(300, child.kill)  # wait4 has no timeout of its own
    timer.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    assert child.returncode == 0, err.read_text()[-2000:]
    assert json.loads(out.read_text()), "no moments"
    return usage.ru_maxrss


def test_streaming_memory_does_not_grow_with_the_video_s_length(media, model_flags, tmp_path):
    # Frames large enough that holding a long video's decoded frames would show: its
    # 2,400 frames of 320×240 are over 500 MB, the process itself about as much.
    size, fps = (320, 240), 2
    short = lavfi_video(tmp_path / "short.mp4", [("testsrc2", 120)], fps, size)
    long = lavfi_video(tmp_path / "long.mp4", [("testsrc2", 1200)], fps, size)
    # One compilation cache: the long run compiles, the short one reads its programs and
    # starts faster (and lower, if anything: the comparison leans against the long run).
    env = {**os.environ, "VIDEOPRISM_CACHE": str(tmp_path / "cache")}
    common = ["--video", media["query"], "--clip-seconds", "10", "--stride-seconds", "10",
              "--top-k", "1", "--json", "--batch-size", "8", *model_flags]  # fmt: skip
    long_peak = _peak_rss_kib(["moments", long, *common], env, tmp_path)
    short_peak = _peak_rss_kib(["moments", short, *common], env, tmp_path)
    assert long_peak <= 1.2 * short_peak, (short_peak, long_peak)


@pytest.fixture(scope="module")
def indexes(media, model_flags, tmp_path_factory):
    """An index of the long video's windows, and one of whole videos."""
    from videoprism_keras.cli import main

    folder = tmp_path_factory.mktemp("moment_indexes")
    built = {"windows": folder / "windows", "whole": folder / "whole"}
    for name, extra in (("windows", WINDOWS), ("whole", [])):
        args = ["index", media["long"], media["query"], "-o", built[name], *extra, "--json"]
        assert main([str(a) for a in [*args, *model_flags]]) == 0
    return built


def test_an_index_s_windows_give_the_planted_moment_and_a_plot(media, indexes, capsys,
                                                               tmp_path):  # fmt: skip
    # No model flags: the index's own preset, soft cap and sampling.
    found = _moments(capsys, indexes["windows"], "--video", media["query"], "--top-k", "2",
                     "--where", f"path = '{media['long']}'")  # fmt: skip
    _, start, end = SEGMENT
    assert len(found) >= 1 and {m["path"] for m in found} == {str(media["long"])}
    assert abs(found[0]["start_s"] - start) <= 2 and abs(found[0]["end_s"] - end) <= 2, found
    plot = tmp_path / "index.png"
    out = call(capsys, "moments", indexes["windows"], "--image", media["still"], "--plot", plot,
               "--title", "where the fractal is")  # fmt: skip
    assert out.returncode == 0 and plot.stat().st_size > 10_000, out.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        (["{whole}", "--video", "{query}"], "holds whole videos, not windows"),
        (["{windows}", "--video", "{query}", "--clip-seconds", "2"], "--clip-seconds is for"),
        (["{windows}", "{long}", "--video", "{query}"], "is an index: give one INDEX"),
        (["{windows}", "--video", "{query}", "--under", "{query}"], "--under {query}: no such"),
        (["{windows}", "--video", "{query}", "--where", "colour = 1"], "--where 'colour = 1'"),
        (["{windows}", "--video", "{query}", "--num-frames", "8"], "--num-frames 4, not 8"),
    ],
)
def test_index_mode_refuses_what_it_cannot_do(media, indexes, args, says, capsys):
    names = {**{k: str(v) for k, v in media.items()}, **{k: str(v) for k, v in indexes.items()}}
    out = call(capsys, "moments", *(a.format(**names) for a in args))
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and says.format(**names) in out.stderr, out.stderr
