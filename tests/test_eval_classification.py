"""`eval classification`'s metrics from scores, against counts and mAP by hand (ties against
the clip, NaN refused, undefined resamples drawn again); the prompt templates (the official
one, the ensemble, a file), the set the record names, and the ensemble's averaging;
`run_classification` on a stand-in cache (failed clips left out and counted) and with the
small model through the real cache, against a count on the embeddings it holds."""

import types
import zlib

import numpy as np
import pytest

from videoprism_keras.apps.evaluation import classification
from videoprism_keras.apps.zero_shot import label_embeddings
from videoprism_keras.constants import EVAL_TEMPLATE_ENSEMBLE, PROMPT_TEMPLATE


def test_top_k_and_mean_class_accuracy_by_counting():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(60, 8))
    truth = rng.integers(0, 8, 60)
    values, _ = classification.classification_metrics(scores, [[t] for t in truth],
                                                      multi_label=False, bootstrap=0)  # fmt: skip
    order = np.argsort(-scores, axis=1)
    top1 = np.mean(order[:, 0] == truth)
    top5 = np.mean([t in row[:5] for row, t in zip(order, truth, strict=True)])
    per_class = [np.mean(order[truth == c, 0] == c) for c in np.unique(truth)]
    assert values == pytest.approx({"top1": top1, "top5": top5,
                                    "mean_class_accuracy": np.mean(per_class)})  # fmt: skip


def test_mean_average_precision_by_hand():
    scores = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.1, 0.5]])
    targets = [[0], [], [0], [1]]
    # Class 0: positives ranked 1st and 3rd → AP (1/1 + 2/3) / 2; class 1: its only
    # positive ranked 3rd → AP 1/3.
    values, intervals = classification.classification_metrics(scores, targets, multi_label=True,
                                                              bootstrap=0)  # fmt: skip
    assert values == pytest.approx({"mAP": ((1 + 2 / 3) / 2 + 1 / 3) / 2})
    assert intervals == {}


def test_intervals_hold_the_estimates_and_are_seeded():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 5, 80)
    scores = rng.normal(size=(80, 5)) + 1.5 * np.eye(5)[truth]
    targets = [[t] for t in truth]
    values, intervals = classification.classification_metrics(scores, targets, multi_label=False,
                                                              bootstrap=100, seed=1)  # fmt: skip
    again = classification.classification_metrics(scores, targets, multi_label=False,
                                                  bootstrap=100, seed=1)[1]  # fmt: skip
    assert intervals == again and set(intervals) == set(values)
    for name, (low, high) in intervals.items():
        assert 0 <= low <= values[name] <= high <= 1, name


def test_a_constant_model_scores_nothing():
    constant = np.full((6, 3), 0.5)
    targets = [[0], [1], [2], [0], [1], [2]]
    values, intervals = classification.classification_metrics(
        constant, targets, multi_label=False, bootstrap=20
    )
    assert values["top1"] == 0.0 and values["mean_class_accuracy"] == 0.0
    assert intervals["top1"] == (0.0, 0.0)
    assert values["top5"] == 1.0  # three classes: every label is within the top five


def test_top_k_and_mean_class_accuracy_count_ties_alike():
    # Clip 1's label ties with class 0 (listed first): a miss for both metrics.
    scores = np.array([[0.9, 0.1, 0.0], [0.6, 0.6, 0.0], [0.1, 0.2, 0.7]])
    values, _ = classification.classification_metrics(scores, [[0], [1], [2]],
                                                      multi_label=False, bootstrap=0)  # fmt: skip
    assert values["top1"] == pytest.approx(2 / 3)
    assert values["mean_class_accuracy"] == pytest.approx(2 / 3)


def test_multi_label_resamples_without_any_positive_are_drawn_again():
    """Two clips of ten carry a label: a resample of ten misses both about one time in
    nine, and has no mAP; the interval holds the defined resamples only."""
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(10, 3))
    targets = [[0] if clip in (2, 7) else [] for clip in range(10)]
    values, intervals = classification.classification_metrics(scores, targets, multi_label=True,
                                                              bootstrap=200, seed=0)  # fmt: skip
    low, high = intervals["mAP"]
    assert np.isfinite([low, high]).all() and 0 < low <= values["mAP"] <= high <= 1


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match=r"scores: expected finite scores\. Received: nan"):
        classification.classification_metrics(np.array([[0.1, np.nan]]), [[0]],
                                               multi_label=False)  # fmt: skip


def test_single_label_refuses_a_clip_with_several_labels():
    with pytest.raises(ValueError, match=r"one label per clip.*Received: 2 for clip 1"):
        classification.classification_metrics(np.zeros((2, 3)), [[0], [1, 2]],
                                               multi_label=False)  # fmt: skip


def _fake_text_embedding(text: str) -> np.ndarray:
    vector = np.random.default_rng(zlib.crc32(text.encode())).normal(size=6)
    return vector / np.linalg.norm(vector)


def _embed(texts):
    return np.stack([_fake_text_embedding(t) for t in texts]).astype(np.float32)


def test_an_ensemble_averages_normalised_prompts_then_normalises():
    labels, templates = ["run", "swim"], ["a video of {}.", "someone doing {}", "{}"]
    got = label_embeddings(_embed, labels, templates)
    for row, label in zip(got, labels, strict=True):
        mean = np.mean([_fake_text_embedding(t.replace("{}", label)) for t in templates], 0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    one = label_embeddings(_embed, labels, [PROMPT_TEMPLATE])
    np.testing.assert_array_equal(one, _embed([PROMPT_TEMPLATE.format(lab) for lab in labels]))


def test_templates_by_name_file_or_list(tmp_path):
    assert classification.read_templates("official") == (PROMPT_TEMPLATE,)
    assert classification.read_templates("ensemble") == EVAL_TEMPLATE_ENSEMBLE
    assert all("{}" in t for t in EVAL_TEMPLATE_ENSEMBLE) and len(EVAL_TEMPLATE_ENSEMBLE) > 1
    listed = tmp_path / "t.txt"
    listed.write_text("# mine\na clip of {}\n\n  {} in a video  \n")
    assert classification.read_templates(listed) == ("a clip of {}", "{} in a video")
    assert classification.read_templates(["x {}"]) == ("x {}",)


def test_the_record_names_the_template_set_given_by_name_file_or_list(tmp_path):
    listed = tmp_path / "mine.txt"
    listed.write_text("a clip of {}\n")
    assert classification.template_set("ensemble") == ("ensemble", EVAL_TEMPLATE_ENSEMBLE)
    assert classification.template_set(str(listed)) == ("file:mine.txt", ("a clip of {}",))
    assert classification.template_set(listed) == ("file:mine.txt", ("a clip of {}",))
    assert classification.template_set(("x {}",)) == ("given", ("x {}",))


@pytest.mark.parametrize(
    "text, says",
    [
        ("a clip of {}\nno label here\n", r"t\.txt, line 2: expected a template with '\{\}'"),
        ("# only a comment\n", r"t\.txt: expected templates, one a line"),
    ],
)
def test_a_bad_template_file_names_its_line(tmp_path, text, says):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(ValueError, match=says):
        classification.read_templates(tmp_path / "t.txt")


def test_an_unknown_template_set_is_refused():
    with pytest.raises(ValueError, match=r"official, ensemble or a text file.*Received: nope"):
        classification.read_templates("nope")


class StandInCache:
    """`EmbeddingCache`'s interface: clip vectors given, texts embedded by `_embed`."""

    model_key = "k1"

    def __init__(self, videos, fail=()):
        self.all, self.fail = videos, set(fail)

    def videos(self, model, clips, **options):
        ok = np.array([i not in self.fail for i in range(len(clips))])
        failures = [(clips[i].path, "not a video") for i in sorted(self.fail)]
        return types.SimpleNamespace(vectors=self.all[ok], ok=ok, failures=failures,
                                     embedded=0)  # fmt: skip

    def texts(self, model, tokenizer, texts, **options):
        return _embed(texts)


def test_run_scores_clips_against_the_labels_prompts_and_counts_failures():
    labels = ["run", "swim", "jump"]
    prompts = label_embeddings(_embed, labels, EVAL_TEMPLATE_ENSEMBLE)
    # Clip i looks like label i % 3; clip 3 cannot be read.
    videos = np.stack([prompts[i % 3] for i in range(5)])
    dataset = types.SimpleNamespace(
        name="csv:k", format="csv", task="classification", annotations="/d/k.csv",
        clips=[types.SimpleNamespace(path=f"/d/{i}.mp4") for i in range(5)], missing=[],
        total=5, protocol="", labels=labels, targets=[(1,), (1,), (2,), (0,), (1,)],
        multi_label=False,
    )  # fmt: skip
    model = types.SimpleNamespace(num_frames=2, frame_shape=(36, 36, 3), name="m",
                                  dtype_policy=types.SimpleNamespace(name="float32"))  # fmt: skip
    record = classification.run_classification(model, None, dataset, StandInCache(videos, [3]),
                                               templates="ensemble", bootstrap=20)  # fmt: skip
    # Clips 0, 1, 2, 4 (3 failed): predicted 0, 1, 2, 1 against 1, 1, 2, 1.
    assert record["metrics"]["top1"] == pytest.approx(0.75)
    assert record["metrics"]["mean_class_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert record["items"] == {
        "used": 4,
        "missing": 0,
        "failed": 1,
        "total": 5,
        "missing_queries": 0,
    }
    assert record["settings"]["template_set"] == "ensemble"
    assert record["settings"]["templates"] == list(EVAL_TEMPLATE_ENSEMBLE)
    assert record["sampling"] == {"num_frames": 2, "size": 36}


def test_a_real_run_equals_a_count_on_its_cached_embeddings(collection_model, media_dir,
                                                            tmp_path):  # fmt: skip
    """The small checkpoint through the real cache, with a file of two templates: the
    record's figures are those of the embeddings the cache holds, the prompts averaged and
    ranked by sorting here (a broken video left out and counted)."""
    from videos import lavfi_video

    from videoprism_keras.apps.evaluation.cache import EmbeddingCache
    from videoprism_keras.apps.evaluation.datasets import read_dataset
    from videoprism_keras.tokenizer import VideoPrismTokenizer

    sources = ("testsrc2", "mandelbrot", "life", "smptebars", "rgbtestsrc", "testsrc")
    names = ("a pattern", "a fractal", "life", "bars", "colours", "a test card")
    rows = []
    for i, source in enumerate(sources):
        lavfi_video(tmp_path / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
        rows.append(f"v{i}.mp4,{names[i]}")
    rows.append(f"v6.mp4,{names[0]}")  # the first video's class twice: a second clip of it
    lavfi_video(tmp_path / "v6.mp4", [("testsrc2", 1)], fps=3, size=(48, 36))
    (tmp_path / "broken.mp4").write_bytes(b"no video" * 100)
    rows.append("broken.mp4,life")
    (tmp_path / "k.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (tmp_path / "t.txt").write_text("a video of {}.\nfootage of {}.\n")
    data = read_dataset(tmp_path / "k.csv")
    tokenizer = VideoPrismTokenizer(media_dir / "test_spm.model")
    cache = EmbeddingCache(tmp_path / "cache", "small", data.name)
    record = classification.run_classification(
        collection_model, tokenizer, data, cache, templates=str(tmp_path / "t.txt"),
        num_frames=2, size=36, progress=False, bootstrap=0,
    )  # fmt: skip
    assert record["items"]["used"] == 7 and record["items"]["failed"] == 1
    assert record["settings"]["template_set"] == "file:t.txt"
    held = cache.videos(collection_model, data.clips, num_frames=2, size=36, progress=False)
    assert held.embedded == 0 and held.ok.tolist() == [True] * 7 + [False]
    prompts = [[t.replace("{}", label) for t in ("a video of {}.", "footage of {}.")]
               for label in data.labels]  # fmt: skip
    per_label = []
    for label_prompts in prompts:
        mean = np.mean(cache.texts(collection_model, tokenizer, label_prompts), axis=0)
        per_label.append(mean / np.linalg.norm(mean))
    scores = held.vectors @ np.stack(per_label).T
    truth = np.array([data.targets[i][0] for i in range(7)])
    place = np.array(
        [list(np.argsort(-row)).index(t) for row, t in zip(scores, truth, strict=True)]
    )
    assert record["metrics"]["top1"] == pytest.approx(np.mean(place == 0))
    assert record["metrics"]["top5"] == pytest.approx(np.mean(place < 5))
    per_class = [np.mean(place[truth == c] == 0) for c in np.unique(truth)]
    assert record["metrics"]["mean_class_accuracy"] == pytest.approx(np.mean(per_class))
