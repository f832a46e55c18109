"""`eval probe`: the frozen-backbone protocol (attentive probe) and the pooled linear probe
beside it, on a generated set that only attention can separate, and from the CLI."""

import json

import numpy as np
import pytest
from cli_helpers import call, run_all
from helpers import TINY
from videos import lavfi_video

import videoprism_keras as vp
from videoprism_keras.apps.evaluation import probe
from videoprism_keras.apps.evaluation.classification import classification_metrics
from videoprism_keras.apps.evaluation.datasets import Clip, Dataset

HIDDEN, TOKENS = 32, 8


def _marked_tokens(n, seed):
    """(n, 1, TOKENS, HIDDEN) features and their classes (0 or 1). Every token is Gaussian
    noise; one, at a random place, carries a marker m plus s·u (s = +1 for class 0, -1 for
    class 1), another the opposite, -s·u. The tokens' mean is then noise + m/TOKENS
    whatever the class (identically distributed: a linear probe on it is at chance), while
    attention that finds the marked token reads s off it."""
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(HIDDEN, HIDDEN)))[0]
    marker, direction = 4.0 * basis[0], 3.0 * basis[1]
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, TOKENS, HIDDEN)).astype(np.float32)
    classes = rng.integers(0, 2, n)
    for row, cls in enumerate(classes):
        sign = 1.0 if cls == 0 else -1.0
        marked, other = rng.choice(TOKENS, 2, replace=False)
        features[row, marked] += marker + sign * direction
        features[row, other] -= sign * direction
    return features[:, None], classes


def test_attention_separates_what_pooling_cannot():
    train_x, train_y = _marked_tokens(400, seed=1)
    val_x, val_y = _marked_tokens(200, seed=2)
    # Identical class means after pooling, by construction (up to sampling noise).
    pooled = train_x.mean(axis=(1, 2))
    gap = pooled[train_y == 0].mean(axis=0) - pooled[train_y == 1].mean(axis=0)
    assert np.abs(gap).max() < 0.15
    # A tiny backbone only sets the pooler's width (HIDDEN) and heads; it never runs.
    backbone = vp.VideoPrismBackbone(**{**TINY, "hidden_dim": HIDDEN, "intermediate_dim": HIDDEN})
    rows = probe.probe_rows(backbone, train_x, [(y,) for y in train_y], val_x,
                            [(y,) for y in val_y], num_classes=2, epochs=10, learning_rate=3e-3,
                            batch_size=32, bootstrap=200)  # fmt: skip
    got = rows["metrics"]
    assert got["attentive_top1"] >= 0.9 and got["attentive_mean_class_accuracy"] >= 0.9
    assert got["linear_top1"] <= 0.65 and got["linear_mean_class_accuracy"] <= 0.65
    low, high = rows["intervals"]["attentive_top1"]
    assert low <= got["attentive_top1"] <= high and high - low < 0.1
    assert backbone.trainable  # the probe froze it only while it trained
    assert len(rows["losses"]) == 10 and rows["losses"][-1] < 0.5 * rows["losses"][0]


def test_linear_probe_separates_what_pooling_keeps_and_is_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 2
    y = np.arange(90) % 3
    x = centres[y] + rng.normal(size=(90, 16))
    first = probe.linear_scores(x[:60], y[:60], x[60:], num_classes=3)
    assert (first.argmax(axis=1) == y[60:]).mean() >= 0.9
    assert np.array_equal(first, probe.linear_scores(x[:60], y[:60], x[60:], num_classes=3))
    # Multi-label: each class an independent sigmoid on its own feature.
    targets = (rng.normal(size=(120, 3)) > 0).astype(np.float32)
    features = np.concatenate([targets * 2 + rng.normal(size=(120, 3)) * 0.5,
                               rng.normal(size=(120, 5))], axis=1)  # fmt: skip
    scores = probe.linear_scores(features[:80], targets[:80], features[80:], num_classes=3,
                                 multi_label=True)  # fmt: skip
    positives = [tuple(np.flatnonzero(row)) for row in targets[80:]]
    values, _ = classification_metrics(scores, positives, multi_label=True, bootstrap=0)
    assert set(values) == {"mAP"} and values["mAP"] > 0.9


def test_probe_metrics_are_the_classification_metrics_prefixed():
    features = np.random.default_rng(0).normal(size=(12, 1, 2, HIDDEN)).astype(np.float32)
    targets = [(i % 3,) for i in range(12)]
    backbone = vp.VideoPrismBackbone(**{**TINY, "hidden_dim": HIDDEN, "intermediate_dim": HIDDEN})
    rows = probe.probe_rows(backbone, features, targets, features, targets, num_classes=3,
                            epochs=1, bootstrap=50)  # fmt: skip
    names = {f"{p}_{m}" for p in ("attentive", "linear")
             for m in ("top1", "top5", "mean_class_accuracy")}  # fmt: skip
    assert set(rows["metrics"]) == set(rows["intervals"]) == names
    for name, (low, high) in rows["intervals"].items():
        assert 0.0 <= low <= rows["metrics"][name] <= high <= 1.0
    assert rows["metrics"]["linear_top5"] == 1.0  # three classes
    # Multi-label sets (Charades): sigmoid classes, mAP for both probes.
    several = [(i % 3, (i + 1) % 3) if i % 2 else (i % 3,) for i in range(12)]
    rows = probe.probe_rows(backbone, features, several, features, several, num_classes=3,
                            multi_label=True, epochs=1, bootstrap=50)  # fmt: skip
    assert set(rows["metrics"]) == {"attentive_mAP", "linear_mAP"}
    assert rows["metrics"]["linear_mAP"] > 0.9  # its own training items, 2·HIDDEN features


class ReadRows:
    """Token features read by position, as the cache's `CachedRows`, counting the most
    rows one read asked for."""

    def __init__(self, array):
        self.array, self.shape, self.most = array, array.shape, 0

    def __len__(self):
        return len(self.array)

    def __getitem__(self, indices):
        got = self.array[indices]
        self.most = max(self.most, len(got))
        return got


def test_the_probes_read_a_batch_at_a_time_and_score_as_on_arrays():
    train_x, train_y = _marked_tokens(40, seed=3)
    val_x, val_y = _marked_tokens(20, seed=4)
    train_x, val_x = train_x.astype(np.float16), val_x.astype(np.float16)  # as cached
    backbone = vp.VideoPrismBackbone(**{**TINY, "hidden_dim": HIDDEN, "intermediate_dim": HIDDEN})
    options = dict(num_classes=2, epochs=2, learning_rate=3e-3, batch_size=16, bootstrap=20)
    arrays = probe.probe_rows(backbone, train_x, [(y,) for y in train_y], val_x,
                              [(y,) for y in val_y], **options)  # fmt: skip
    rows = [ReadRows(train_x), ReadRows(val_x)]
    streamed = probe.probe_rows(backbone, rows[0], [(y,) for y in train_y], rows[1],
                                [(y,) for y in val_y], **options)  # fmt: skip
    assert rows[0].most == rows[1].most == 16  # never the whole set at once
    assert streamed["metrics"] == pytest.approx(arrays["metrics"], abs=1e-6)
    np.testing.assert_allclose(streamed["losses"], arrays["losses"], rtol=1e-5)
    np.testing.assert_allclose(probe.pooled_features(rows[0], 7),
                               train_x.astype(np.float32).mean(axis=(1, 2)), rtol=1e-6)  # fmt: skip


def _dataset(name, paths, labels=("a", "b"), multi_label=False, task="classification"):
    clips = [Clip(p) if isinstance(p, str) else Clip(*p) for p in paths]
    return Dataset(name=name, format="csv", task=task, annotations=f"/data/{name}.csv",
                   clips=clips, missing=[], total=len(clips), labels=list(labels),
                   targets=[(i % 2,) for i in range(len(clips))],
                   multi_label=multi_label)  # fmt: skip


def test_a_pair_is_refused_before_any_embedding_when_it_cannot_be_probed():
    train = _dataset("train", ["/v/a.mp4", ("/v/b.mp4", 0.0, 2.0), "/v/c.mp4"])
    assert probe.check_pair(train, _dataset("val", ["/v/d.mp4"], labels=("b",))).tolist() == [1]
    # The same file, another span: another clip.
    probe.check_pair(train, _dataset("val", [("/v/b.mp4", 2.0, 4.0), ("/v/a.mp4", 0.0, 1.0)]))
    shared = _dataset("val", ["/v/d.mp4", ("/v/b.mp4", 0.0, 2.0), "/v/c.mp4"])
    with pytest.raises(ValueError, match=r"expected no clip in both .*Received: 2 shared, the "
                       r"first /v/b\.mp4"):  # fmt: skip
        probe.check_pair(train, shared)
    with pytest.raises(ValueError, match=r"Received: train is single-label, val multi-label"):
        probe.check_pair(train, _dataset("val", ["/v/d.mp4"], multi_label=True))
    with pytest.raises(ValueError, match=r"val: expected a classification dataset"):
        probe.check_pair(train, _dataset("val", ["/v/d.mp4"], task="retrieval"))
    # run_probe checks before it asks for a cache (nothing embedded).
    with pytest.raises(ValueError, match="2 shared"):
        probe.run_probe(None, train, shared, lambda d: pytest.fail("embedded"), progress=False)


def test_validation_labels_must_be_training_labels():
    assert probe.label_mapping(["a", "b", "c"], ["c", "a"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="val has d, e, which train has not"):
        probe.label_mapping(["a", "b"], ["a", "d", "e"])
    assert probe.target_array([(2,), (0, 2)], 3, True).tolist() == [[0, 0, 1], [1, 0, 1]]
    assert probe.target_array([(1,), (0,)], 3, False).tolist() == [1, 0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two classes of generated videos (a test pattern, a fractal zoom), three of each to
    train on and two to measure on; the validation CSV also names a video that is gone."""
    folder = tmp_path_factory.mktemp("probe")
    rows = {"train": [], "val": []}
    for label, source in (("pattern", "testsrc2"), ("fractal", "mandelbrot")):
        for i in range(5):
            name = f"{label}{i}.mp4"
            lavfi_video(folder / name, [(source, 1 + 0.5 * i)], fps=4, size=(48, 36))
            rows["train" if i < 3 else "val"].append(f"{name},{label}")
    rows["val"].append("gone.mp4,pattern")
    for split, lines in rows.items():
        (folder / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    (folder / "other.csv").write_text("path,label\npattern0.mp4,pattern\nfractal0.mp4,bars\n")
    (folder / "overlap.csv").write_text("path,label\npattern4.mp4,pattern\nfractal1.mp4,fractal\n")
    (folder / "splits.csv").write_text("path,label,split\npattern0.mp4,pattern,train\n"
                                       "fractal0.mp4,fractal,val\n")  # fmt: skip
    return folder


def test_eval_probe_writes_both_rows_and_caches_the_features(data, golden_dir, env, tmp_path):
    out, cache = tmp_path / "results", tmp_path / "cache"
    command = ["eval", "probe", data / "train.csv", "--val", data / "val.csv", "--preset",
               golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames", "2",
               "--size", "36", "--epochs", "10", "--learning-rate", "0.01", "--token-grid", "3",
               "--bootstrap", "20", "--no-progress", "--cache", cache, "-o", out]  # fmt: skip
    first, second = run_all(env, [*command, "--json"], command)
    record = json.loads(first.stdout)
    assert record["task"] == "probe" and record["dataset"]["name"] == "csv:val"
    assert record["items"] == {
        "used": 4,
        "missing": 1,
        "failed": 0,
        "total": 5,
        "missing_queries": 0,
    }
    names = {f"{p}_{m}" for p in ("attentive", "linear")
             for m in ("top1", "top5", "mean_class_accuracy")}  # fmt: skip
    assert set(record["metrics"]) == set(record["intervals"]) == names
    assert all(0.0 <= v <= 1.0 for v in record["metrics"].values())
    # A test pattern and a fractal zoom: told apart by both probes (the attentive one with
    # a logit margin of 3 or more on every validation clip, for seeds 0, 1 and 2).
    assert record["metrics"]["attentive_top1"] == 1.0
    assert record["metrics"]["linear_top1"] == 1.0
    settings = record["settings"]
    assert settings["train"]["used"] == 6 and settings["token_grid"] == 3
    assert settings["tokens"] == [2, 9] and len(settings["attentive"]["losses"]) == 10
    # Train, then val: embedded the first time, read back from the cache the second.
    assert first.stderr.count("videos: 6 embedded") + first.stderr.count("4 embedded") == 2
    assert "videos: 0 embedded, 6 from the cache" in second.stderr, second.stderr
    assert "videos: 0 embedded, 4 from the cache" in second.stderr
    assert "attentive_top1" in second.stdout and "linear_top1" in second.stdout
    (written,) = out.glob("*__probe.json")
    assert json.loads(written.read_text())["metrics"] == record["metrics"]  # seeded


@pytest.mark.parametrize(
    "args, says",
    [
        (["{d}/train.csv"], "the following arguments are required: --val"),
        (["{d}/train.csv", "--val", "{d}/nope.csv"], "--val {d}/nope.csv: no such file"),
        (["{d}/train.csv", "--val", "{d}/other.csv"], "--val {d}/other.csv has bars, which"),
        (["{d}/train.csv", "--val", "{d}/val.csv", "--token-grid", "0"], "--token-grid"),
        (["{d}/train.csv", "--val", "{d}/val.csv", "--val-videos", "{d}/no"], "--val-videos"),
        (
            ["{d}/train.csv", "--val", "{d}/overlap.csv"],
            "Received: 1 shared, the first {d}/fractal1.mp4",
        ),
        # One file of two splits: --split is TRAIN's, --val-split the validation one's.
        (
            ["{d}/splits.csv", "--split", "train", "--val", "{d}/splits.csv"],
            "--val {d}/splits.csv: holds splits train, val; choose one",
        ),
        (
            ["{d}/splits.csv", "--split", "train", "--val", "{d}/splits.csv", "--val-split", "va"],
            "--val {d}/splits.csv: no row has split 'va'",
        ),
    ],
)
def test_bad_probe_input_is_one_line_before_the_model_loads(data, args, says, capsys):
    fill = lambda text: text.format(d=data)  # noqa: E731
    out = call(capsys, "eval", "probe", *map(fill, args), "--preset", "/nonexistent/model.npz")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and fill(says) in out.stderr, out.stderr


def test_the_seed_help_says_what_it_seeds(capsys):
    out = call(capsys, "eval", "probe", "--help")
    assert "seeds the bootstrap and the probes' training" in " ".join(out.stdout.split())
