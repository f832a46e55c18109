"""Moments: spans grown from similarity curves (`apps.timeline`), the coarse stage over an
index (`VideoIndex.curves`/`moments`), and coarse-to-fine refinement (`apps.refine`) with
the small checkpoint on generated videos whose segments change at known times."""

import json
import sys
import types

import numpy as np
import pytest
from videos import write_video

from videoprism_keras.apps import Embeddings, VideoIndex
from videoprism_keras.apps import refine as refine_module
from videoprism_keras.apps.timeline import Curve, Moment, moments_of

CLIP, STRIDE = 2.0, 1.0


def _overlap(starts, ends, a, b):
    """The share of each window that [a, b] covers: how a real moment's windows score."""
    return np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None) / (ends - starts)


def _curve(path, plateaus, length=60.0, clip=CLIP, stride=STRIDE, floor=0.8):
    """A curve at `floor` with each (start, end, height) plateau ramping up over a window."""
    starts = np.arange(0, length - clip + 1e-9, stride)
    ends = starts + clip
    scores = floor + sum(h * _overlap(starts, ends, a, b) for a, b, h in plateaus)
    return Curve(path, starts, ends, scores)


# ----------------------------------------------------------------- span logic
@pytest.mark.parametrize("clip, stride", [(2.0, 1.0), (4.0, 1.0), (3.0, 3.0), (1.0, 0.25)])
def test_a_planted_plateau_gives_its_edges_whatever_the_clip_and_stride(clip, stride):
    curve = _curve("v", [(20.3, 31.7, 0.2)], clip=clip, stride=stride)
    [moment] = moments_of([curve], top_k=3)
    assert moment.path == "v" and moment.score == pytest.approx(1.0)
    # The half-height crossing between window centres is the content's edge: exactly
    # where windows overlap (the ramp is sampled inside), closely where they only touch.
    near = 0.05 if clip > stride else stride / 4
    assert moment.start_s == pytest.approx(20.3, abs=near)
    assert moment.end_s == pytest.approx(31.7, abs=near)


def test_several_peaks_rank_by_score_and_their_slopes_are_no_moments():
    a = _curve("a", [(5, 12, 0.15), (40, 47, 0.05)])
    b = _curve("b", [(20, 30, 0.2)])
    found = moments_of([a, b], top_k=10)
    assert [(m.path, round(m.start_s), round(m.end_s)) for m in found] == [
        ("b", 20, 30), ("a", 5, 12), ("a", 40, 47)]  # fmt: skip
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert moments_of([a, b], top_k=2) == found[:2]
    assert moments_of([a, b], top_k=1) == found[:1]


def test_the_baseline_is_the_median_unless_given_and_flat_curves_have_no_moment():
    curve = _curve("v", [(10, 20, 0.2), (30, 34, 0.05)])
    assert len(moments_of([curve], 5)) == 2
    # A baseline above the small peak leaves only the big one.
    [moment] = moments_of([curve], 5, baseline=0.86)
    assert round(moment.start_s) == 10 and round(moment.end_s) == 20
    flat = Curve("flat", [0, 1, 2], [2, 3, 4], [0.5, 0.5, 0.5])
    assert moments_of([flat], 3) == []
    assert moments_of([], 3) == []


def test_a_relative_threshold_nearer_the_peak_makes_narrower_spans():
    curve = _curve("v", [(20, 30, 0.2)])
    half = moments_of([curve], 1)[0]
    high = moments_of([curve], 1, relative=0.9)[0]
    assert high.start_s > half.start_s and high.end_s < half.end_s


def test_a_one_window_curve_spans_its_window_and_ties_are_ordered():
    one = Curve("one", [3.0], [5.0], [0.99])
    other = _curve("other", [(10, 20, 0.19)])
    found = moments_of([other, one], 2)
    assert found[0] == Moment("one", 3.0, 5.0, pytest.approx(0.99))
    # Two equal peaks: the same order every time (by path), not by input order.
    twin = _curve("twin", [(10, 20, 0.19)])
    assert [m.path for m in moments_of([twin, other], 2)] == ["other", "twin"]
    assert [m.path for m in moments_of([other, twin], 2)] == ["other", "twin"]


def test_windows_with_gaps_are_not_merged():
    # Stride above the clip: windows do not touch, so each is its own span.
    curve = Curve("gaps", [0, 3, 6, 9], [1, 4, 7, 10], [0.1, 0.9, 0.9, 0.1])
    found = moments_of([curve], 5)
    assert [(m.start_s, m.end_s) for m in found] == [(3.0, 4.0), (6.0, 7.0)]


def test_moments_and_curves_are_json_ready():
    curve = _curve("v", [(5, 9, 0.2)], length=12)
    moment = moments_of([curve], 1)[0]
    assert set(moment.as_dict()) == {"path", "start_s", "end_s", "score"}
    back = json.loads(json.dumps([moment.as_dict(), curve.as_dict()]))
    assert back[0]["path"] == "v" and back[1]["scores"] == pytest.approx(curve.scores.tolist())
    assert len(curve) == len(back[1]["start_s"]) == len(back[1]["end_s"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(start_s=[0, 1], end_s=[2, 3], scores=[0.5, np.nan]), "finite"),
    (dict(start_s=[0, np.nan], end_s=[2, 3], scores=[0.5, 0.6]), "without window times"),
    (dict(start_s=[0, 1], end_s=[2, 3], scores=[0.5]), "one non-zero length"),
    (dict(start_s=[], end_s=[], scores=[]), "one non-zero length"),
    (dict(start_s=[1, 0], end_s=[3, 2], scores=[0.5, 0.6]), "sorted by start_s"),
    (dict(start_s=[0, 1], end_s=[2, 0.5], scores=[0.5, 0.6]), "ends before it starts"),
])  # fmt: skip
def test_a_bad_curve_is_refused_naming_the_video(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        Curve("clip.mp4", **kwargs)
    assert "clip.mp4" in str(err.value)


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True, "3"])
def test_top_k_below_one_or_not_an_integer_is_refused(top_k):
    with pytest.raises(ValueError, match=r"top_k must be an integer of at least 1. Received"):
        moments_of([_curve("v", [(5, 9, 0.2)])], top_k)


@pytest.mark.parametrize("relative", [0, 1, 1.5, -0.1])
def test_relative_outside_zero_one_is_refused(relative):
    with pytest.raises(ValueError, match="relative must be between 0 and 1"):
        moments_of([_curve("v", [(5, 9, 0.2)])], 1, relative=relative)


def test_a_half_inside_window_scores_above_the_midpoint_unless_the_contents_are_opposite():
    mixed = refine_module.mixed_score
    assert mixed(1.0, 0.8, 0.8, 0.5) == pytest.approx(np.sqrt(0.9))  # (1 + 0.8) / 2 / √0.9
    assert mixed(1.0, 0.8, 0.8, 0.5) > 0.9
    assert mixed(1.0, 0.0, 1.0, 0.5) == pytest.approx(0.5)  # alike contents: linear
    assert mixed(1.0, 0.2, 0.5, 0.0) == pytest.approx(0.2)
    assert mixed(1.0, 0.2, 0.5, 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("up", [True, False])
def test_a_fine_curve_whose_threshold_is_clipped_to_its_best_window_keeps_the_coarse_edge(up):
    # Alike contents (cosine 0.9) barely apart: the half-inside score clips to the best
    # window's, so no window rises above the threshold (an IndexError or a wrapped index
    # before); the coarse edge stays.
    scores = np.array([0.49, 0.495, 0.5] if up else [0.5, 0.495, 0.49])
    assert refine_module.mixed_score(0.5, 0.49, 0.9, 0.5) == 0.5
    inside, outside = np.array([1.0, 0.0]), np.array([0.9, np.sqrt(1 - 0.81)])
    vectors = np.stack([outside, (inside + outside) / 2, inside] if up else
                       [inside, (inside + outside) / 2, outside])  # fmt: skip
    centres = np.array([9.5, 10.0, 10.5])
    assert refine_module._crossing(centres, scores, vectors, 10.2, 0.5, up) == 10.2
    # A flat curve: nothing to cross either.
    assert refine_module._crossing(centres, np.full(3, 0.3), vectors, 7.0, 0.5, up) == 7.0


def test_a_timeline_of_many_videos_draws_those_of_the_best_moments_at_a_capped_height(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from videoprism_keras import plots

    curves = [_curve(f"v{i:02d}", [(0, 2, 0.1), (1, 3, 0.2 + i / 100)]) for i in range(20)]
    moments = [Moment(f"v{i:02d}", 1, 3, 0.5 - i / 100) for i in range(19, -1, -1)]
    capped = plots.plot_timeline(curves, moments, tmp_path / "many.png", "t")
    few = plots.plot_timeline(curves[: plots.TIMELINE_MAX_ROWS], moments, tmp_path / "few.png")
    with Image.open(capped) as a, Image.open(few) as b:
        assert a.height == pytest.approx(b.height, abs=b.height * 0.05)
    with pytest.raises(ValueError, match=r"no curves to plot.*Received: curves=\[\]"):
        plots.plot_timeline([], moments, tmp_path / "none.png")


def test_centring_in_float64_gives_the_norms_near_the_mean_to_float32_precision():
    from videoprism_keras.apps.timeline import centring

    rng = np.random.default_rng(3)
    common = rng.normal(size=64)
    vectors = common + 0.002 * rng.normal(size=(500, 64))  # all within ~1e-3 of the mean
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    mean, along, norms = centring(vectors)
    direct = np.linalg.norm(vectors.astype(np.float64) - mean, axis=1)
    # 1e-5 here (float32 unit vectors are unit to ~1e-7); float32 products: 7e-5.
    assert np.abs(norms - direct).max() < 3e-5
    np.testing.assert_allclose(along, vectors.astype(np.float64) @ mean, rtol=1e-12)


def test_centred_scores_spread_a_compressed_curve_and_match_the_index(tmp_path):
    from videoprism_keras.apps.timeline import centred_scores

    rng = np.random.default_rng(1)
    common = 3 * _unit(rng.normal(size=16))
    vectors = _unit(common + 0.3 * rng.normal(size=(30, 16)))
    query = vectors[7]
    raw = vectors @ query
    centred = centred_scores(vectors, query)
    assert raw.min() > 0.8  # compressed: all alike
    assert centred[7] == pytest.approx(1.0) and centred.min() < 0.0
    mean = vectors.mean(axis=0)  # a query at the mean: plain cosines
    np.testing.assert_allclose(centred_scores(vectors, mean), vectors @ mean, rtol=1e-6)
    # The index's curves are the same scores, centred on the index's mean.
    index = VideoIndex(tmp_path / "ix")
    index.add(Embeddings(vectors, ["v.mp4"] * 30, np.arange(30.0), np.arange(30.0) + 2))
    assert index.curves(query)[0].scores == pytest.approx(centred, abs=1e-5)


# ------------------------------------------------------------ over an index
def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _planted_index(tmp_path, videos=40, windows=30, dim=16, seed=0):
    """Videos under a/ and b/ with random windows; `query` planted in video 7 at 10–18 s
    and more weakly in video 23 (under b/) at 3–9 s."""
    rng = np.random.default_rng(seed)
    query = _unit(rng.normal(size=dim))
    starts = np.arange(windows) * STRIDE
    ends = starts + CLIP
    vectors, paths = [], []
    for v in range(videos):
        clips = _unit(rng.normal(size=(windows, dim)) + 2 * _unit(rng.normal(size=dim)))
        for at, a, b, weight in ((7, 10, 18, 1.0), (23, 3, 9, 0.6)):
            if v == at:
                share = weight * _overlap(starts, ends, a, b)[:, None]
                clips = _unit((1 - share) * clips + share * query)
        vectors.append(clips)
        paths += [str(tmp_path / ("a" if v < 20 else "b") / f"v{v:02d}.mp4")] * windows
    index = VideoIndex(tmp_path / "ix")
    index.add(Embeddings(np.concatenate(vectors), paths, np.tile(starts, videos),
                         np.tile(ends, videos)))  # fmt: skip
    return index, query


def test_index_moments_find_the_planted_span_and_equal_growing_every_curve(tmp_path):
    index, query = _planted_index(tmp_path)
    found = index.moments(query, top_k=3)
    assert found[0].path.endswith("v07.mp4")
    assert found[0].start_s == pytest.approx(10, abs=STRIDE)
    assert found[0].end_s == pytest.approx(18, abs=STRIDE)
    assert found[1].path.endswith("v23.mp4") and 2 < found[1].start_s < found[1].end_s < 10
    # Only the best videos' curves are grown: the same answer as growing all of them.
    curves = index.curves(query)
    assert len(curves) == 40 and all(len(c) == 30 for c in curves)
    for k in (1, 3, 5, 12):  # one baseline (`timeline.baseline_of`): the very same moments
        assert index.moments(query, k) == moments_of(curves, k)


def test_index_moments_and_curves_take_search_filters(tmp_path):
    index, query = _planted_index(tmp_path)
    under_b = index.moments(query, 3, under=tmp_path / "b")
    assert under_b and all("/b/" in m.path for m in under_b)
    assert under_b[0].path.endswith("v23.mp4")
    late = index.moments(query, 3, where="start_s >= 12")
    assert all(m.start_s >= 12 - STRIDE for m in late)
    assert not any(m.path.endswith("v23.mp4") for m in late)  # its moment is early
    one = index.curves(query, paths=[tmp_path / "a" / "v07.mp4"])
    assert [c.path for c in one] == [str(tmp_path / "a" / "v07.mp4")]
    assert one[0].scores.argmax() in range(10, 17)
    assert index.curves(query, where="path = 'none'") == []
    assert index.moments(query, 3, where="path = 'none'") == []


def test_index_moments_refuse_bad_queries_and_whole_video_indexes(tmp_path):
    index, query = _planted_index(tmp_path, videos=3)
    with pytest.raises(ValueError, match="top_k must be an integer of at least 1"):
        index.moments(query, top_k=0)
    with pytest.raises(ValueError, match=r"the query is 8-d, the index .* holds 16-d"):
        index.moments(query[:8])
    with pytest.raises(ValueError, match=r"query must be one \(D,\) embedding"):
        index.moments(np.stack([query, query]))
    with pytest.raises(ValueError, match="query is all zeros or holds NaN"):
        index.curves(np.zeros(16))
    with pytest.raises(ValueError, match=r"shots=True .* pass the index's model"):
        index.moments(query, shots=True)
    with pytest.raises(ValueError, match="empty: add videos"):
        VideoIndex(tmp_path / "empty").moments(query)
    whole = VideoIndex(tmp_path / "whole")
    whole.add(Embeddings(_unit(np.ones((2, 16))), ["x.mp4", "y.mp4"]))
    for call in (whole.moments, whole.curves):
        with pytest.raises(ValueError, match=r"whole videos .* rebuild it with clip_seconds"):
            call(query)


# ------------------------------------------------- refinement, small checkpoint
FPS, SIDE, SEGMENT_S = 10, 64, 6
# Seeded: `life` and `cellauto` start from random cells otherwise.
SOURCES = ("testsrc2", "mandelbrot", "life=seed=1")


def _lavfi(source, seconds):
    import av

    name, _, options = source.partition("=")
    options = f"size={SIDE}x{SIDE}:rate={FPS}" + (f":{options}" if options else "")
    container = av.open(f"{name}={options}", format="lavfi")
    frames = []
    with container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == seconds * FPS:
                return frames
    raise AssertionError(f"lavfi {source} gave {len(frames)} frames")


@pytest.fixture(scope="module")
def small(golden_dir):
    import videoprism_keras as vp

    return vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                             attention_logit_soft_cap=5.0)  # fmt: skip


@pytest.fixture(scope="module")
def footage(small, tmp_path_factory):
    """An 18 s video of three 6 s segments (cuts at 6 and 12 s), a 1 s video (shorter than
    one window), their index (2 s windows every 1 s, 32² frames), and each segment alone
    as a query file."""
    from videoprism_keras.apps import embed_videos

    root = tmp_path_factory.mktemp("moments")
    segments = [_lavfi(source, SEGMENT_S) for source in SOURCES]
    frames = [f for segment in segments for f in segment]
    (root / "library").mkdir()
    long = write_video(root / "library" / "long.mp4", frames=len(frames), size=(SIDE, SIDE),
                       fps=FPS, image=lambda i: frames[i])  # fmt: skip
    short_frames = _lavfi("cellauto=seed=2", 1)
    short = write_video(root / "library" / "short.mp4", frames=len(short_frames),
                        size=(SIDE, SIDE), fps=FPS, image=lambda i: short_frames[i])  # fmt: skip
    queries = []
    for i, segment in enumerate(segments):
        path = write_video(root / f"segment{i}.mp4", frames=len(segment), size=(SIDE, SIDE),
                           fps=FPS, image=lambda j, s=segment: s[j])  # fmt: skip
        queries.append(embed_videos(small, [path], size=32, progress=False).vectors[0])
    short_query = embed_videos(small, [short], size=32, progress=False).vectors[0]
    index = VideoIndex(root / "index")
    index.add_videos(small, [root / "library"], clip_seconds=CLIP, stride_seconds=STRIDE,
                     size=32, progress=False)  # fmt: skip
    return types.SimpleNamespace(index=index, long=str(long.resolve()), queries=queries,
                                 short=str(short.resolve()), short_query=short_query)  # fmt: skip


FINE = STRIDE / 4


@pytest.mark.parametrize("segment", [1, 2])
def test_refined_edges_land_within_one_fine_stride_of_the_cuts(small, footage, segment):
    truth = (segment * SEGMENT_S, (segment + 1) * SEGMENT_S)
    coarse = footage.index.moments(footage.queries[segment], top_k=2)
    assert coarse[0].path == footage.long
    assert coarse[0].start_s == pytest.approx(truth[0], abs=STRIDE)
    assert coarse[0].end_s == pytest.approx(truth[1], abs=STRIDE)
    refined = footage.index.moments(footage.queries[segment], top_k=2, model=small)
    best = refined[0]
    assert best.path == footage.long
    assert best.start_s == pytest.approx(truth[0], abs=FINE)
    assert best.end_s == pytest.approx(truth[1], abs=FINE)
    # Scored as a whole span: the segment itself, as its own file was embedded.
    assert best.score > 0.99 and best.score >= max(m.score for m in refined)


def test_refinement_decodes_only_around_the_moment(small, footage, monkeypatch):
    asked = []
    for name in ("seek_frames", "stream_frames"):
        real = getattr(refine_module, name)

        def recording(path, wanted, *args, real=real, **kwargs):
            asked.extend(int(i) for i in wanted)
            return real(path, wanted, *args, **kwargs)

        monkeypatch.setattr(refine_module, name, recording)
    coarse = footage.index.moments(footage.queries[1], top_k=1)
    refined = refine_module.refine(small, coarse, footage.queries[1], clip_seconds=CLIP,
                                   stride_seconds=STRIDE, num_frames=4, size=32)  # fmt: skip
    assert refined[0].start_s == pytest.approx(SEGMENT_S, abs=FINE)
    # Each edge's windows reach half a window and a stride beyond it: a window and a
    # stride of seconds, the 18 s video's first and last seconds never decoded.
    seconds = np.array(asked) / FPS
    reach = CLIP + STRIDE + 1 / FPS
    assert seconds.min() >= coarse[0].start_s - reach and seconds.min() > 2
    assert seconds.max() <= coarse[0].end_s + reach and seconds.max() < 16


def test_moments_refined_a_few_at_a_time_are_those_refined_together(small, footage,
                                                                    monkeypatch):  # fmt: skip
    # Memory stays bounded by MOMENT_REFINE_GROUP moments' frames, not top_k's.
    decoded = []
    real = refine_module._Video.frames
    monkeypatch.setattr(
        refine_module._Video,
        "frames",
        lambda self, wanted: decoded.append(len(wanted)) or real(self, wanted),
    )
    coarse = [Moment(footage.long, a, b, 1.0) for a, b in ((3, 7), (5, 9), (10, 13))]
    settings = dict(clip_seconds=CLIP, stride_seconds=STRIDE, num_frames=4, size=32)
    together = refine_module.refine(small, coarse, footage.queries[1], **settings)
    assert len(decoded) == 2  # the edges, then the whole spans: one group
    monkeypatch.setattr(refine_module, "MOMENT_REFINE_GROUP", 1)
    decoded.clear()
    apart = refine_module.refine(small, coarse, footage.queries[1], **settings)
    assert len(decoded) == 2 * len(coarse)
    spans = lambda found: [t for m in found for t in (m.start_s, m.end_s, m.score)]  # noqa: E731
    assert spans(apart) == pytest.approx(spans(together), abs=1e-4)


def test_shots_snap_refined_edges_to_the_cuts_found_near_them(small, footage, monkeypatch):
    ranges = []

    def shot_cuts(path, start_s=None, end_s=None):
        ranges.append((start_s, end_s))
        cuts = np.array([6.0, 12.0])
        return cuts[(cuts >= start_s) & (cuts <= end_s)]

    def snap(t, cuts, tolerance_s):
        near = [c for c in cuts if abs(c - t) <= tolerance_s]
        return float(min(near, key=lambda c: abs(c - t))) if near else t

    stub = types.ModuleType("videoprism_keras.video.shots")
    stub.shot_cuts, stub.snap = shot_cuts, snap
    monkeypatch.setitem(sys.modules, "videoprism_keras.video.shots", stub)
    best = footage.index.moments(footage.queries[1], top_k=1, model=small, shots=True)[0]
    assert (best.start_s, best.end_s) == (6.0, 12.0)
    # Cuts were looked for around each edge only, not over the video.
    assert len(ranges) == 2 and all(b - a <= 3 for a, b in ranges)
    assert ranges[0][0] < 6 < ranges[0][1] < ranges[1][0] < 12 < ranges[1][1]


def test_shots_snap_to_the_cuts_pyscenedetect_finds(small, footage):
    # The real detector (video/shots.py, the `shots` extra), once it is in the package.
    pytest.importorskip("videoprism_keras.video.shots")
    pytest.importorskip("scenedetect")
    best = footage.index.moments(footage.queries[1], top_k=1, model=small, shots=True)[0]
    assert best.start_s == pytest.approx(6.0, abs=1 / FPS)
    assert best.end_s == pytest.approx(12.0, abs=1 / FPS)


def test_a_video_shorter_than_one_window_is_one_moment_refined_in_place(small, footage):
    coarse = footage.index.moments(footage.short_query, top_k=1)
    assert coarse[0].path == footage.short
    assert coarse[0].start_s == 0.0 and coarse[0].end_s == pytest.approx(1.0, abs=0.15)
    refined = footage.index.moments(footage.short_query, top_k=1, model=small)[0]
    assert refined.path == footage.short
    assert 0.0 <= refined.start_s < refined.end_s <= coarse[0].end_s + 1e-9


def test_refine_refuses_bad_settings_and_queries(small):
    moment = [Moment("x.mp4", 0.0, 2.0, 0.9)]
    with pytest.raises(ValueError, match="stride_seconds must be a positive number"):
        refine_module.refine(small, moment, np.ones(4), clip_seconds=2, stride_seconds=0,
                             num_frames=4, size=32)  # fmt: skip
    with pytest.raises(ValueError, match="query must be a finite, non-zero embedding"):
        refine_module.refine(small, moment, np.zeros(4), clip_seconds=2, stride_seconds=1,
                             num_frames=4, size=32)  # fmt: skip
    assert refine_module.refine(small, [], np.ones(4), clip_seconds=2, stride_seconds=1,
                                num_frames=4, size=32) == []  # fmt: skip


def test_an_index_of_embeddings_cannot_be_refined(small, tmp_path):
    index, query = _planted_index(tmp_path, videos=2)
    with pytest.raises(ValueError, match=r"records no sampling .* without model"):
        index.moments(query, model=small)
