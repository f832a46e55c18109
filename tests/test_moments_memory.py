"""`videoprism moments FILE` streams: a long video takes the memory of a short one. Real
processes, as a user runs the command, each one's own peak resident memory compared."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from videos import lavfi_video


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


def test_streaming_memory_does_not_grow_with_the_video_s_length(golden_dir, tmp_path):
    # Frames large enough that holding a long video's decoded frames would show: its
    # 2,400 frames of 320×240 are over 500 MB, the process itself about as much.
    size, fps = (320, 240), 2
    short = lavfi_video(tmp_path / "short.mp4", [("testsrc2", 120)], fps, size)
    long = lavfi_video(tmp_path / "long.mp4", [("testsrc2", 1200)], fps, size)
    query = lavfi_video(tmp_path / "query.mp4", [("mandelbrot", 10)], fps, size)
    model_flags = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5",
                   "--no-progress"]  # fmt: skip
    # One compilation cache: the long run compiles, the short one reads its programs and
    # starts faster; compiling is the long run's, so nothing favours it.
    env = {**os.environ, "VIDEOPRISM_CACHE": str(tmp_path / "cache")}
    common = ["--video", query, "--clip-seconds", "10", "--stride-seconds", "10",
              "--top-k", "1", "--json", "--batch-size", "8", *model_flags]  # fmt: skip
    long_peak = _peak_rss_kib(["moments", long, *common], env, tmp_path)
    short_peak = _peak_rss_kib(["moments", short, *common], env, tmp_path)
    assert long_peak <= 1.2 * short_peak, (short_peak, long_peak)
