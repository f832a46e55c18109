"""`videoprism moments`: its arguments and errors, both modes (an index's windows; files
streamed without one), JSON and plot; and `apps.streaming.stream_curves` beneath it.

Videos are made here with PyAV's bundled libav sources (distinct moving pictures), tiny
and at a few frames per second; the model is the small random LvT checkpoint, whose
embeddings still tell these sources apart."""

import json
import re

import numpy as np
import pytest
from cli_helpers import call
from videos import lavfi_video

SEGMENT = ("mandelbrot", 10.0, 18.0)  # the query's source, and where the long video has it


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("moments")
    source, start, end = SEGMENT
    long = lavfi_video(folder / "long.mp4", [("testsrc2", start), (source, end - start),
                                             ("life", 10)])  # fmt: skip
    query = lavfi_video(folder / "query.mp4", [(source, end - start)])
    lavfi_video(folder / "short.mp4", [("testsrc2", 1)])
    lavfi_video(folder / "static.mp4", [("color", 6)])  # every window alike: a flat curve
    import av

    with av.open(str(query)) as held:  # a still of the query's source
        frame = next(f for i, f in enumerate(held.decode(video=0)) if i == 12)
        Image.fromarray(frame.to_ndarray(format="rgb24")).save(folder / "still.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 100)
    return {"folder": folder, "long": long, "query": query, "short": folder / "short.mp4",
            "still": folder / "still.png", "broken": folder / "broken.png",
            "garbage": folder / "broken.mp4", "static": folder / "static.mp4"}  # fmt: skip


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
        (["{long}", "--video", "{garbage}"], "--video {garbage}: not a readable video"),
        (["{garbage}", "--video", "{query}"], "{garbage}: not a readable video"),
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
        (["https://example.com/v.MP4", "--video", "{query}"], "is a video URI, and moments"),
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


def test_a_flat_curve_has_no_moments_says_so_and_draws_nothing(media, model_flags, capsys,
                                                               tmp_path):  # fmt: skip
    plot = tmp_path / "flat.png"
    # One window per batch: another batch shape may round the same window's score apart.
    out = call(capsys, "moments", media["static"], "--video", media["query"], *WINDOWS,
               "--plot", plot, "--batch-size", "1", *model_flags)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "no moments for 'query.mp4'\n" and "no --plot" in out.stderr
    assert not plot.exists()


def test_text_queries_run_end_to_end_with_shots(media, model_flags, media_dir, capsys):
    # Plumbing only: the small checkpoint's text tower is random (and lavfi has no cuts).
    tokenizer = media_dir / "test_spm.model"
    found = _moments(capsys, media["long"], media["query"], "--text", "a fractal", *WINDOWS,
                     "--tokenizer", tokenizer, "--shots", *model_flags)  # fmt: skip
    assert found and {m["path"] for m in found} <= {str(media["long"]), str(media["query"])}


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


@pytest.fixture(scope="module")
def small_model(golden_dir):
    from videoprism_keras import VideoPrismBackbone

    path = golden_dir / "lvt_small.ckpt.npz"
    return VideoPrismBackbone.from_preset(path, attention_logit_soft_cap=5.0)


def test_a_streamed_curve_is_the_one_an_index_of_the_file_gives(media, indexes, small_model):
    from videoprism_keras.apps import VideoIndex, embed_videos
    from videoprism_keras.apps.streaming import stream_curves

    query = embed_videos(small_model, [media["query"]], progress=False).vectors[0]
    files = [str(media["long"]), str(media["query"])]  # what the index holds: one mean
    streamed = list(stream_curves(small_model, files, query, clip_seconds=2, stride_seconds=1,
                                  batch_size=3))  # fmt: skip
    indexed = VideoIndex.load(indexes["windows"]).curves(query, paths=files)
    assert [c.path for c in streamed] == files and len(streamed[0]) > 20
    indexed = {c.path: c for c in indexed}
    for curve in streamed:
        np.testing.assert_allclose(curve.start_s, indexed[curve.path].start_s, atol=1e-4)
        np.testing.assert_allclose(curve.end_s, indexed[curve.path].end_s, atol=1e-4)
        np.testing.assert_allclose(curve.scores, indexed[curve.path].scores, atol=1e-3)


def test_a_file_that_fails_is_skipped_and_recorded_or_raised(media, small_model, tmp_path):
    from videoprism_keras.apps.streaming import stream_curves
    from videoprism_keras.video import VideoDecodeError

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    query = np.ones(small_model.hidden_dim, np.float32)
    stream = stream_curves(small_model, [broken, media["short"]], query, clip_seconds=1,
                           on_error="skip")  # fmt: skip
    curves = list(stream)
    assert [c.path for c in curves] == [str(media["short"])]
    assert [path for path, _ in stream.failures] == [str(broken)]
    with pytest.raises(VideoDecodeError, match=r"broken\.mp4"):
        list(stream_curves(small_model, [broken], query, clip_seconds=1))


def test_the_query_must_be_one_finite_vector(media, small_model):
    from videoprism_keras.apps.streaming import stream_curves

    dim = small_model.hidden_dim
    for bad in (np.ones((2, dim)), np.full(dim, np.nan), np.ones(0)):
        with pytest.raises(ValueError, match="query must be one finite embedding"):
            stream_curves(small_model, [media["long"]], bad, clip_seconds=1)
    with pytest.raises(ValueError, match="clip_seconds must be positive"):
        stream_curves(small_model, [media["long"]], np.ones(dim), clip_seconds=0)
