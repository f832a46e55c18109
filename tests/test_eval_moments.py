"""`eval moments` (Charades-STA moment retrieval): the windows, each query's top moment
from known window embeddings (planted moments found at IoU ≥ 0.5), the scores by hand,
and the whole run on generated videos with the small model (record, cache, missing)."""

import types

import numpy as np
import pytest
from videos import lavfi_frames

from videoprism_keras.apps.evaluation import grounding, metrics
from videoprism_keras.constants import EVAL_MOMENT_IOUS

DIM = 16


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _planted(duration, moment, clip=4.0, stride=1.0, seed=0, path="v.mp4"):
    """A video whose seconds inside `moment` show content A (axis 0) and the others one of
    a few background contents; each window's vector is the mean of its seconds' contents
    (plus a little noise), as a window mixing two contents embeds between them."""
    rng = np.random.default_rng(seed)
    backgrounds = np.eye(DIM)[[1 + seed % 5, 7, 9]]
    content = lambda t: (np.eye(DIM)[0] if moment[0] <= t < moment[1]  # noqa: E731
                         else backgrounds[int(t // 10) % 3])  # fmt: skip
    spans = grounding.window_spans(duration, clip, stride)
    vectors = []
    for start, end in spans:
        seconds = np.arange(start, end, 0.1) + 0.05
        mixed = np.mean([content(t) for t in seconds], axis=0)
        vectors.append(_unit(mixed + rng.normal(scale=0.02, size=DIM)))
    starts, ends = (np.array(a) for a in zip(*spans, strict=True))
    return grounding.Windows(path, starts, ends, np.array(vectors, np.float32))


def test_window_spans_cut_as_iter_clips_does():
    assert grounding.window_spans(10.0, 4.0, 2.0) == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 10)]
    assert grounding.window_spans(3.0, 4.0, 1.0, fps=10) == [(0, 3), (1, 3), (2, 3)]
    # No window starts after the last frame (at 9.9 s at 10 fps): as `plan_windows`.
    assert grounding.window_spans(10.0, 4.0, 9.95, fps=10) == [(0, 4)]
    with pytest.raises(ValueError, match=r"stride_seconds must be a positive.*Received"):
        grounding.window_spans(10.0, 4.0, 0.0)


@pytest.mark.parametrize("moment", [(10.0, 18.0), (0.0, 6.0), (22.0, 30.0), (12.0, 15.0)])
def test_a_planted_moment_is_found_at_iou_above_one_half(moment):
    videos = [_planted(30.0, moment, seed=1), _planted(30.0, (3.0, 9.0), seed=2, path="w")]
    query = _unit(np.eye(DIM)[0] + 0.05 * np.random.default_rng(3).normal(size=DIM))
    spans = grounding.top_moments(videos, query[None], [0])
    iou = float(metrics.temporal_iou(spans[0], moment))
    assert iou >= 0.5, (spans[0], moment, iou)


def test_each_query_is_grounded_in_its_own_video_and_unread_videos_give_nan():
    videos = [_planted(30.0, (10.0, 18.0), seed=1), None, _planted(30.0, (3.0, 9.0), seed=2)]
    query = _unit(np.eye(DIM)[0])[None].repeat(3, axis=0)
    spans = grounding.top_moments(videos, query, [0, 1, 2])
    assert metrics.temporal_iou(spans[[0, 2]], [(10.0, 18.0), (3.0, 9.0)]).min() >= 0.5
    assert np.isnan(spans[1]).all()


def test_a_flat_curve_predicts_the_whole_video():
    flat = grounding.Windows("f", np.array([0.0, 1.0, 2.0]), np.array([4.0, 5.0, 5.5]),
                             np.tile(_unit(np.eye(DIM)[1]), (3, 1)).astype(np.float32))  # fmt: skip
    other = _planted(30.0, (10.0, 18.0), seed=1)
    spans = grounding.top_moments([flat, other], _unit(np.eye(DIM)[0])[None], [0])
    assert spans[0].tolist() == [0.0, 5.5]


def test_group_windows_gathers_the_ok_rows_of_each_video_by_start():
    clip = lambda p, a=None, b=None: types.SimpleNamespace(path=p, start_s=a, end_s=b)  # noqa: E731
    clips = [clip("a"), clip("b"), clip("c")]
    windows = [clip("a", 2, 6), clip("a", 0, 4), clip("b", 0, 4), clip("c", 0, 4)]
    owner = np.array([0, 0, 1, 2])
    ok = np.array([True, True, False, True])
    vectors = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)  # rows of the ok windows
    got = grounding.group_windows(clips, windows, owner, vectors, ok)
    assert got[0].start_s.tolist() == [0, 2] and got[0].vectors.tolist() == [[2, 3], [0, 1]]
    assert got[1] is None
    assert got[2].path == "c" and got[2].vectors.tolist() == [[4, 5]]


def test_scores_by_hand_skip_unscored_queries_and_bootstrap_brackets_them():
    spans = np.array([[0, 10], [0, 5], [np.nan, np.nan], [5, 15], [20, 30]], np.float64)
    truth = [(0, 10), (0, 10), (0, 10), (0, 10), (0, 10)]
    found, intervals, iou = grounding.score(spans, truth, bootstrap=200, seed=0)
    assert iou.tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.0])
    assert found == pytest.approx(
        {
            "R@1_IoU0.3": 0.75,
            "R@1_IoU0.5": 0.5,
            "R@1_IoU0.7": 0.25,
            "mIoU": (1.5 + 1 / 3) / 4,
        }
    )
    assert set(intervals) == set(found) == {f"R@1_IoU{t:g}" for t in EVAL_MOMENT_IOUS} | {"mIoU"}
    for name, (low, high) in intervals.items():
        assert 0.0 <= low <= found[name] <= high <= 1.0
    with pytest.raises(ValueError, match="no query could be scored"):
        grounding.score(spans[[2]], truth[:1])


# ---- the whole run on generated videos

FPS, SIDE, SEGMENT_S = 10, 32, 4
# Seeded: `life` starts from random cells otherwise.
SOURCES = ("testsrc2", "mandelbrot", "life=seed=1", "rgbtestsrc")


def _lavfi(source, seconds):
    name, _, options = source.partition("=")
    options = f"size={SIDE}x{SIDE}:rate={FPS}" + (f":{options}" if options else "")
    frames = list(lavfi_frames(f"{name}={options}", seconds * FPS))
    assert len(frames) == seconds * FPS, f"lavfi {source} gave {len(frames)} frames"
    return frames


@pytest.fixture(scope="module")
def charades(tmp_path_factory):
    """Two 12 s videos of three 4 s segments of distinct content, a Charades-STA
    annotation file naming them and one video that is not there, two queries each."""
    from videos import write_video

    root = tmp_path_factory.mktemp("charades")
    (root / "videos").mkdir()
    segments = {s: _lavfi(s, SEGMENT_S) for s in SOURCES}
    orders = {"AAAA1": SOURCES[:3], "BBBB2": (SOURCES[3], SOURCES[0], SOURCES[1])}
    for name, order in orders.items():
        frames = [f for s in order for f in segments[s]]
        write_video(root / "videos" / f"{name}.mp4", frames=len(frames), size=(SIDE, SIDE),
                    fps=FPS, image=lambda i, f=frames: f[i])  # fmt: skip
    lines = ["AAAA1 4.0 8.0##a person draws a fractal.",
             "AAAA1 0.0 4.0##a person looks at a test card.",
             "BBBB2 0.0 4.0##a person holds coloured bars.",
             "BBBB2 8.0 12.0##a person draws a fractal.",
             "CCCC3 1.0 5.0##a person opens a door."]  # fmt: skip
    annotations = root / "charades_sta_test.txt"
    annotations.write_text("\n".join(lines) + "\n")
    # Each segment's content, as the planted "truth" embedding of a span (see FakeCache).
    contents = {name: order for name, order in orders.items()}
    return types.SimpleNamespace(root=root, annotations=annotations, contents=contents)


# Each query's content: what a perfect text encoder would embed it to.
QUERIES = {"a person draws a fractal.": "mandelbrot",
           "a person looks at a test card.": "testsrc2",
           "a person holds coloured bars.": "rgbtestsrc"}  # fmt: skip
FAKE_MODEL = {"name": "fake", "source": "fake", "dtype": "float32", "lora": [], "key": "fake"}


def FakeModel():  # what the sampling reads of a model (no weights)
    return types.SimpleNamespace(num_frames=2, frame_shape=(16, 16, 3))


class FakeCache:
    """The cache's interface with known embeddings: a window's vector is the mean of its
    seconds' content axes (the segment each second shows), a query's the axis of the
    content its annotation spans. What a perfect encoder would give."""

    def __init__(self, contents, queries, unreadable=()):
        self.contents, self.queries, self.calls = contents, queries, []
        self.unreadable = set(unreadable)  # window starts that fail to decode
        self.model_key = "fake"

    def _axis(self, source):
        return np.eye(DIM)[SOURCES.index(source)]

    def videos(self, model, clips, **kwargs):
        self.calls.append(kwargs)
        vectors, ok = [], np.ones(len(clips), bool)
        for i, clip in enumerate(clips):
            if clip.start_s in self.unreadable:  # a window past the last frame, say
                ok[i] = False
                continue
            order = self.contents[clip.path.rsplit("/", 1)[-1].removesuffix(".mp4")]
            seconds = np.arange(clip.start_s, clip.end_s, 0.1) + 0.05
            mixed = np.mean([self._axis(order[min(int(t // SEGMENT_S), 2)]) for t in seconds], 0)
            vectors.append(_unit(mixed))
        failures = [(c.path, "no frame there") for c, read in zip(clips, ok, strict=True)
                    if not read]  # fmt: skip
        return types.SimpleNamespace(vectors=np.array(vectors, np.float32), ok=ok,
                                     failures=failures, embedded=int(ok.sum()))  # fmt: skip

    def texts(self, model, tokenizer, texts, **kwargs):
        return np.array([self._axis(self.queries[t]) for t in texts], np.float32)


def _moments_dataset(charades):
    """The annotation file's dataset, as the Charades-STA adapter reads it."""
    from videoprism_keras.apps.evaluation.datasets import Clip, Dataset

    videos = charades.root / "videos"
    return Dataset(name="charades-sta-test", format="charades-sta", task="moments",
                   annotations=str(charades.annotations),
                   clips=[Clip(str(videos / "AAAA1.mp4")), Clip(str(videos / "BBBB2.mp4"))],
                   missing=[str(videos / "CCCC3")], total=3,
                   queries=["a person draws a fractal.", "a person looks at a test card.",
                            "a person holds coloured bars.", "a person draws a fractal."],
                   query_clip=[0, 0, 1, 1], spans=[(4.0, 8.0), (0.0, 4.0), (0.0, 4.0),
                                                   (8.0, 12.0)])  # fmt: skip


def test_known_embeddings_find_every_annotated_moment(charades):
    dataset = _moments_dataset(charades)
    cache = FakeCache(charades.contents, QUERIES)
    model = FakeModel()
    record = grounding.run_moments(model, None, dataset, cache, clip_seconds=2.0,
                                   stride_seconds=1.0, bootstrap=50, progress=False,
                                   model_info=FAKE_MODEL)  # fmt: skip
    assert record["metrics"]["R@1_IoU0.5"] == 1.0 and record["metrics"]["mIoU"] > 0.7
    assert record["items"] == {
        "used": 2,
        "missing": 1,
        "failed": 0,
        "total": 3,
        "missing_queries": 0,
    }
    assert record["settings"]["queries"] == 4 and record["settings"]["windows"] == 2 * 12
    assert record["sampling"]["clip_seconds"] == 2.0


def test_windows_are_those_iter_clips_cuts(charades):
    from videoprism_keras.video import iter_clips

    path = charades.root / "videos" / "AAAA1.mp4"
    cut = [(c.start_s, c.end_s) for c in iter_clips(path, 2.0, 1.0, 2, 16)]
    clip = types.SimpleNamespace(path=str(path), start_s=None, end_s=None)
    windows, owner, failures = grounding.plan_windows([clip], 2.0, 1.0)
    assert np.allclose([(w.start_s, w.end_s) for w in windows], cut) and len(cut) == 12
    assert owner.tolist() == [0] * len(cut) and not failures


@pytest.fixture(scope="module")
def small(golden_dir, media_dir):
    import videoprism_keras as vp

    model = vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    return model, vp.VideoPrismTokenizer.from_preset(media_dir / "test_spm.model")


def test_the_small_model_through_the_cache_embeds_nothing_again_and_refines(
    charades, small, tmp_path
):
    from videoprism_keras.apps.evaluation.cache import EmbeddingCache, model_key

    model, tokenizer = small
    dataset = _moments_dataset(charades)
    cache = EmbeddingCache(tmp_path, model_key(model, source="small", dtype="float32"),
                           dataset.name)  # fmt: skip
    run = lambda **kw: grounding.run_moments(model, tokenizer, dataset, cache,  # noqa: E731
                                             clip_seconds=2.0, stride_seconds=2.0,
                                             num_frames=2, size=16, bootstrap=20,
                                             progress=False, **kw)  # fmt: skip
    first = run()
    assert first["settings"]["embedded"] == first["settings"]["windows"] == 2 * 6
    assert set(first["metrics"]) == {"R@1_IoU0.3", "R@1_IoU0.5", "R@1_IoU0.7", "mIoU"}
    assert first["sampling"] == {"num_frames": 2, "size": 16, "clip_seconds": 2.0,
                                 "stride_seconds": 2.0}  # fmt: skip
    again = run()
    assert again["settings"]["embedded"] == 0 and again["metrics"] == first["metrics"]
    # Refinement embeds finer windows around each moment's edges (not through the cache).
    lines = []
    refined = run(refine=True, log=lines.append)
    assert refined["settings"]["refine"] and refined["settings"]["embedded"] == 0
    assert lines == ["windows: 0 embedded, 12 from the cache"]
    assert all(0.0 <= v <= 1.0 for v in refined["metrics"].values())


def test_the_command_writes_the_record_and_a_second_run_embeds_nothing(
    charades, golden_dir, media_dir, tmp_path
):
    import json

    from videoprism_keras.cli import main

    args = ["eval", "moments", charades.annotations, "--format", "charades-sta", "--videos",
            charades.root / "videos", "--preset", golden_dir / "lvt_small.ckpt.npz",
            "--soft-cap", "5", "--tokenizer", media_dir / "test_spm.model",
            "--num-frames", "2", "--size", "16", "--clip-seconds", "2", "--stride-seconds", "2",
            "--bootstrap", "20", "--cache", tmp_path / "cache", "-o", tmp_path / "results",
            "--no-progress"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    (written,) = (tmp_path / "results").glob("*.json")
    record = json.loads(written.read_text())
    assert record["task"] == "moments"
    assert set(record["metrics"]) == {"R@1_IoU0.3", "R@1_IoU0.5", "R@1_IoU0.7", "mIoU"}
    assert set(record["intervals"]) == set(record["metrics"])
    assert all(0.0 <= v <= 1.0 for v in record["metrics"].values())
    assert record["items"] == {
        "used": 2,
        "missing": 1,
        "failed": 0,
        "total": 3,
        "missing_queries": 1,
    }
    assert record["settings"]["embedded"] == record["settings"]["windows"] == 2 * 6
    assert record["sampling"]["num_frames"] == 2 and record["sampling"]["size"] == 16
    assert main([str(a) for a in args]) == 0
    again = json.loads(written.read_text())
    assert again["settings"]["embedded"] == 0
    assert again["metrics"] == record["metrics"]


def test_usage_errors_name_the_flag_before_any_model_loads(charades, capsys, tmp_path):
    """Each a line at the CLI, before any model loads (no --preset given: none could)."""
    from cli_helpers import call

    base = ["eval", "moments", charades.annotations, "--format", "charades-sta"]
    got = call(capsys, *base, "--clip-seconds", "0")
    assert got.returncode == 2 and "--clip-seconds" in got.stderr
    got = call(capsys, *base, "--lora", tmp_path / "none.lora.h5")
    assert got.returncode == 2 and "--lora" in got.stderr and "no such file" in got.stderr
    plain = tmp_path / "pairs.csv"
    plain.write_text(f"path,caption\n{charades.root / 'videos' / 'AAAA1.mp4'},a fractal\n")
    got = call(capsys, "eval", "moments", plain)
    assert got.returncode == 2 and "a retrieval dataset" in got.stderr


def test_an_unreadable_video_is_counted_failed_and_its_queries_left_out(charades, tmp_path):
    from videoprism_keras.apps.evaluation.datasets import Clip

    broken = tmp_path / "DDDD4.mp4"
    broken.write_bytes(b"not a video at all")
    dataset = _moments_dataset(charades)
    dataset.clips.append(Clip(str(broken)))
    dataset.total += 1
    dataset.queries.append("a person draws a fractal.")
    dataset.query_clip.append(2)
    dataset.spans.append((0.0, 4.0))
    lines = []
    model = FakeModel()
    cache = FakeCache(charades.contents, QUERIES)
    record = grounding.run_moments(model, None, dataset, cache, clip_seconds=2.0,
                                   stride_seconds=1.0, bootstrap=0, progress=False,
                                   model_info=FAKE_MODEL, log=lines.append)  # fmt: skip
    assert record["items"] == {
        "used": 2,
        "missing": 1,
        "failed": 1,
        "total": 4,
        "missing_queries": 0,
    }
    assert record["settings"]["queries_failed"] == 1 and record["settings"]["queries_used"] == 4
    assert record["settings"]["failed_videos"] == [str(broken)]
    assert record["metrics"]["R@1_IoU0.5"] == 1.0 and record["intervals"] == {}
    assert "1 video(s) could not be read" in lines[0] and "DDDD4.mp4" in lines[0]


def test_a_window_that_cannot_be_read_leaves_its_video_grounded_on_the_others(charades):
    lines = []
    cache = FakeCache(charades.contents, QUERIES, unreadable={11.0})  # each video's last
    record = grounding.run_moments(FakeModel(), None, _moments_dataset(charades), cache,
                                   clip_seconds=2.0, stride_seconds=1.0, bootstrap=0,
                                   progress=False, model_info=FAKE_MODEL,
                                   log=lines.append)  # fmt: skip
    assert record["items"]["failed"] == 0 and record["settings"]["windows_failed"] == 2
    assert record["metrics"]["R@1_IoU0.5"] == 1.0
    assert lines == ["windows: 22 embedded, 0 from the cache, 2 could not be read"]


def test_no_video_read_is_an_error_naming_the_annotations_and_the_first_reason(charades):
    cache = FakeCache(charades.contents, QUERIES, unreadable=set(np.arange(12.0)))
    dataset = _moments_dataset(charades)
    with pytest.raises(ValueError, match=r"charades_sta_test.txt: none of its 2 videos could "
                       r"be read \(first: .*AAAA1.mp4: no frame there\)"):  # fmt: skip
        grounding.run_moments(
            FakeModel(),
            None,
            dataset,
            cache,
            clip_seconds=2.0,
            stride_seconds=1.0,
            progress=False,
            model_info=FAKE_MODEL,
        )
