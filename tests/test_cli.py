"""The `videoprism` command on the small official checkpoints: end to end in subprocesses
(the commands of one test in one interpreter where no assertion is about the process), and
the argument checks (which answer before any model loads) in process, through `main`."""

import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from cli_helpers import call, run_all
from videos import write_video


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "VIDEOPRISM_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def run(env, *args, ok=True):
    out = subprocess.run([sys.executable, "-m", "videoprism_keras.cli", *map(str, args)],
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    if ok:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    common = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames", "4"]
    return [*common, "--size", "16", "--no-progress"], ["--tokenizer", media_dir / "test_spm.model"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory, media_dir):
    folder = tmp_path_factory.mktemp("videos")
    for i in range(3):
        write_video(folder / f"gen{i}.mp4", frames=30 + 10 * i, size=(32, 32))
    return folder


def test_classify_json_and_plot(env, lvt, media_dir, tmp_path):
    model, tok = lvt
    out = run(env, "classify", media_dir / "water_bottle_drumming.mp4", *model, *tok,
              "--labels", "drumming,cooking,a cat", "--top-k", "2", "--json",
              "--plot", tmp_path / "p.png")  # fmt: skip
    result = json.loads(out.stdout)
    assert len(result) == 1 and len(result[0]["top"]) == 2
    probs = [hit["probability"] for hit in result[0]["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_embed_formats(env, lvt, videos, tmp_path):
    model, _ = lvt
    frames = ["embed", videos / "gen0.mp4", "-o", tmp_path / "f.npz", "--kind", "frames", *model]
    run_all(env, *(["embed", videos, "-o", tmp_path / name, *model]
                   for name in ("e.npz", "e.npy", "e.parquet")), frames,
            ["embed", videos, "-o", tmp_path / "b1.npz", *model, "--batch-size", "1"])  # fmt: skip
    data = np.load(tmp_path / "e.npz")
    assert data["vectors"].shape == (3, 32) and len(data["paths"]) == 3
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), data["vectors"])
    from videoprism_keras.apps import Embeddings

    np.testing.assert_allclose(Embeddings.load(tmp_path / "e.parquet").vectors, data["vectors"])
    assert np.load(tmp_path / "f.npz")["vectors"].shape == (1, 4, 32)
    # .npy keeps the file names in a sidecar; --batch-size changes nothing but the batching.
    assert json.loads((tmp_path / "e.json").read_text())["paths"] == list(data["paths"])
    np.testing.assert_allclose(np.load(tmp_path / "b1.npz")["vectors"], data["vectors"], atol=1e-5)


def test_bfloat16_fast_mode(env, lvt, videos, tmp_path):
    model, _ = lvt
    run_all(env, ["embed", videos, "-o", tmp_path / "exact.npz", *model],
            ["embed", videos, "-o", tmp_path / "fast.npz", *model, "--dtype", "bfloat16"],
            ["index", videos, "-o", tmp_path / "index", *model, "--dtype", "bfloat16"])  # fmt: skip
    exact, fast = (np.load(tmp_path / f"{name}.npz")["vectors"] for name in ("exact", "fast"))
    assert fast.dtype == np.float32  # the files stay float32 whatever the compute dtype
    assert (exact * fast).sum(-1).min() > 0.999  # unit vectors: cosine similarity
    assert np.abs(fast - exact).max() > 1e-5  # it did run in bfloat16
    from videoprism_keras.apps import VideoIndex

    meta = VideoIndex.load(tmp_path / "index").meta
    assert meta["dtype"] == "bfloat16"  # and search uses it unless told otherwise


def test_embed_clips_keep_their_times(env, lvt, videos, tmp_path):
    model, _ = lvt
    args = ["--clip-seconds", "2", "--stride-seconds", "1", *model]
    run(env, "embed", videos / "gen2.mp4", "-o", tmp_path / "c.parquet", *args)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "c.parquet")  # 5 s: windows start at 0, 1, 2, 3, 4
    assert table["path"].to_pylist() == [str(videos / "gen2.mp4")] * 5
    assert table["start_s"].to_pylist() == [0, 1, 2, 3, 4]
    assert table["end_s"].to_pylist() == [2, 3, 4, 5, 5]


def test_index_then_search_by_text_and_video(env, lvt, videos, media_dir, tmp_path):
    model, tok = lvt
    index = tmp_path / "index"
    real = media_dir / "water_bottle_drumming.mp4"  # 8.3 s: 9 windows
    query = ["--video", real, "--top-k", "1", "--json"]
    _, added, found, same, _ = run_all(
        env,
        ["index", videos / "gen0.mp4", real, "-o", index, "--clip-seconds", "1", *model],
        ["index", videos / "gen1.mp4", videos / "gen2.mp4", "-o", index, "--clip-seconds", "1",
         "--json", *model],
        ["search", index, "--text", "a video", *model, *tok, "--json"],
        ["search", index, *query, *model],
        ["search", index, "--text", "a video", *model, *tok, "--plot", tmp_path / "s.png"],
    )  # fmt: skip
    out = json.loads(added.stdout)
    assert out["size"] == 3 + 9 + 4 + 5  # 3 s, 8.3 s, 4 s and 5 s videos in 1 s windows
    hits = json.loads(found.stdout)
    assert len(hits) == 5 and all({"path", "start_s", "end_s", "score"} <= set(h) for h in hits)
    same = json.loads(same.stdout)
    assert same[0]["path"] == os.path.abspath(real) and same[0]["score"] > 0.9
    assert (tmp_path / "s.png").stat().st_size > 5_000


def test_index_prints_its_own_lines_and_a_bar_with_its_total(env, lvt, videos, tmp_path):
    model, _ = lvt
    shown = [arg for arg in model if arg != "--no-progress"]
    # A new process: TensorFlow (which Keras imports to write the index's config) is loaded
    # here for the first time, and its start-up lines would come now.
    out = run(env, "index", videos, "-o", tmp_path / "ix", "--clip-seconds", "1", *shown)
    lines = [line for line in re.split(r"[\r\n]", out.stderr) if line.strip()]
    assert lines and all(line.startswith(("embedding:", "videoprism:")) for line in lines), lines
    # 3 + 4 + 5 one-second clips, counted before the first is embedded.
    bar = [line for line in lines if line.startswith("embedding:")]
    assert "| 0/12 [" in bar[0] and "| 12/12 [" in bar[-1] and "<" in bar[-1]


def test_train_lowers_the_loss(env, golden_dir, tmp_path):
    data = tmp_path / "data"
    for label in range(5):  # classifier_small has 5 classes
        for i in range(2):
            (data / f"class{label}").mkdir(parents=True, exist_ok=True)
            write_video(
                data / f"class{label}" / f"{i}.mp4", frames=8 + 6 * label + i, size=(16, 16)
            )
    out = run(env, "train", data, "-o", tmp_path / "clf.keras", "--classifier",
              golden_dir / "classifier_small.ckpt.npz", "--soft-cap", "5", "--num-frames", "4",
              "--size", "16", "--epochs", "30", "--learning-rate", "0.01", "--json",
              "--no-progress")  # fmt: skip
    result = json.loads(out.stdout)
    assert result["losses"][-1] < 0.8 * result["losses"][0]
    assert (tmp_path / "clf.keras").is_file()


def test_errors_are_one_line(env, lvt, tmp_path, capsys):
    model, tok = lvt
    # The whole process says one line: no traceback, nothing a library logs on its way.
    out = run(env, "classify", tmp_path / "missing.mp4", "--labels", "a,b", *model, *tok, ok=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "missing.mp4" in out.stderr
    out = call(capsys, "classify", tmp_path, *model)
    assert out.returncode == 2 and "--labels" in out.stderr
    out = call(capsys, "search", tmp_path, "--text", "x", *model, *tok)
    assert "not a video index" in out.stderr
    (tmp_path / "file").write_text("x")
    out = call(capsys, "index", tmp_path, "-o", tmp_path / "file" / "ix", *model)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "-o" in out.stderr
    assert "cannot write" in out.stderr and "Traceback" not in out.stderr


def test_help_and_usage_errors_load_no_keras():
    code = ("import sys\nfrom videoprism_keras.cli import main\n"
            "assert main(['--help']) == 0 and main(['nonsense']) == 2\n"
            "assert 'keras' not in sys.modules, 'Keras was imported'")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: videoprism" in out.stdout and "invalid choice: 'nonsense'" in out.stderr


def test_info(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIDEOPRISM_CACHE", str(tmp_path / "cache"))
    out = json.loads(call(capsys, "info", "--json").stdout)
    assert set(out["presets"]) >= {"videoprism_public_v1_base", "videoprism_lvt_public_v1_large"}
    assert out["backend"] in {"jax", "torch", "tensorflow"}


def test_backend_before_or_after_the_command(env, capsys):
    plain = {k: v for k, v in env.items() if k != "KERAS_BACKEND"}
    assert json.loads(run(plain, "info", "--json").stdout)["backend"] == "jax"  # the default
    out = run(plain, "info", "--json", "--backend", "torch")
    assert json.loads(out.stdout)["backend"] == "torch"
    # Either place reaches the backend choice; here Keras is loaded already, with another.
    import keras

    loaded = keras.backend.backend()
    other = "torch" if loaded != "torch" else "jax"
    for args in (["info", "--json", "--backend", other], ["--backend", other, "info", "--json"]):
        out = call(capsys, *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1
        assert f"--backend {other}: Keras is already loaded with {loaded}" in out.stderr
    out = call(capsys, "info", "--backend", "caffe")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "caffe" in out.stderr


def test_usage_errors_are_one_line_with_code_2(lvt, capsys):
    model, _ = lvt
    for args in (
        ["classify", "--labels", "a,b"],  # no video
        ["classify", "x.mp4", "--labels", "a", "--top-k", "0"],
        ["search", "ix", "--text", "a", "--video", "b.mp4"],
        ["embed", "x.mp4", "-o", "e.npz", "--no-such-option"],
        ["nonsense"],
    ):
        out = call(capsys, *args)
        assert out.returncode == 2, args
        assert out.stderr.count("\n") == 1 and "error:" in out.stderr, out.stderr
        assert "usage:" not in out.stderr
    out = call(capsys, "classify", "x.mp4", "--labels", "a", "--template", "no slot", *model)
    assert out.returncode == 2 and "--template" in out.stderr


def test_the_old_frames_flag_works_for_a_release_and_names_the_new_one(capsys):
    from videoprism_keras.cli import COMMAND_MODULES
    from videoprism_keras.cli.parser import build

    parser = build("", COMMAND_MODULES)
    assert parser.parse_args(["embed", "x.mp4", "-o", "e.npz", "--num-frames", "4"]).frames == 4
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["embed", "x.mp4", "-o", "e.npz", "--frames", "4"]).frames == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--frames is deprecated" in err and "use --num-frames" in err


def test_main_leaves_the_process_as_it_found_it(lvt, tmp_path, monkeypatch, capsys):
    import keras

    model, _ = lvt
    monkeypatch.setenv("VIDEOPRISM_CACHE", str(tmp_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    environ, show, filters = dict(os.environ), warnings.showwarning, list(warnings.filters)
    finders = list(sys.meta_path)
    backend = ["--backend", keras.backend.backend()]
    assert call(capsys, *backend, "info", "--json").returncode == 0
    assert call(capsys, *backend, "classify", "x.mp4", "--labels", "a", "--template", "no slot",
                *model).returncode == 2  # fmt: skip
    assert dict(os.environ) == environ
    assert warnings.showwarning is show and warnings.filters == filters
    assert sys.meta_path == finders


def test_template_and_temperature(env, lvt, media_dir):
    model, tok = lvt
    clip = media_dir / "water_bottle_drumming.mp4"
    labels = ["--labels", "drumming,cooking,a cat", "--top-k", "3", "--json"]
    extras = ([], ["--temperature", "1"], ["--template", "a photo of {}, taken at night"])
    runs = run_all(env, *(["classify", clip, *model, *tok, *labels, *extra] for extra in extras))

    def probabilities(out):
        top = json.loads(out.stdout)[0]
        by_label = {hit["label"]: hit["probability"] for hit in top["top"]}
        return np.array([by_label[label] for label in ("drumming", "cooking", "a cat")])

    default, warm, other = map(probabilities, runs)
    # p ∝ exp(s / T): at T = 1 the probabilities are softmax(0.01 · log p(T = 0.01)).
    logits = 0.01 * np.log(default)
    np.testing.assert_allclose(warm, np.exp(logits) / np.exp(logits).sum(), rtol=1e-3)
    assert np.ptp(warm) < np.ptp(default)
    assert np.abs(other - default).max() > 1e-3 and other.sum() == pytest.approx(1.0, abs=1e-5)


def test_an_index_remembers_its_tokenizer(env, lvt, videos, media_dir, tmp_path, capsys):
    import shutil

    from videoprism_keras.apps import VideoIndex

    model, _ = lvt
    vocabulary = tmp_path / "vocabulary.model"
    shutil.copy(media_dir / "test_spm.model", vocabulary)
    index, plain = tmp_path / "index", tmp_path / "plain"
    _, found, without = run_all(
        env,
        ["index", videos / "gen0.mp4", "-o", index, *model, "--tokenizer", vocabulary],
        ["search", index, "--text", "a video", "--json"],  # no --preset, no --tokenizer
        ["index", videos / "gen0.mp4", "-o", plain, *model],
    )
    assert VideoIndex.load(index).meta["tokenizer"] == str(vocabulary.resolve())
    assert [hit["path"] for hit in json.loads(found.stdout)] == [str(videos / "gen0.mp4")]
    assert "will need --tokenizer" in without.stderr  # said when it can still be given
    assert "tokenizer" not in VideoIndex.load(plain).meta
    vocabulary.unlink()
    out = call(capsys, "search", index, "--text", "a video")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert str(vocabulary.resolve()) in out.stderr and "pass --tokenizer" in out.stderr


def test_index_vector_index_is_built_once_and_reused(env, lvt, videos, tmp_path):
    from videoprism_keras.apps import VideoIndex

    model, tok = lvt
    index = tmp_path / "index"
    run(env, "index", videos, "-o", index, "--clip-seconds", "1", "--ann-threshold", "4", *model)
    built = VideoIndex.load(index).stats()
    assert built.indices == 1 and built.has_vector_index  # 12 clips >= 4: built by `index`
    for query in (["--text", "a video", *tok], ["--video", videos / "gen1.mp4"]):
        hits = json.loads(run(env, "search", index, *query, *model, "--json").stdout)
        assert len(hits) == 5
    after = VideoIndex.load(index).stats()
    assert after.version == built.version and after.vector_index_id == built.vector_index_id
    assert {hit["path"] for hit in hits} <= {str(path) for path in videos.glob("*.mp4")}


def test_index_keeps_one_preset_and_skips_what_it_holds(env, lvt, videos, golden_dir, tmp_path,
                                                         capsys):  # fmt: skip
    model, tok = lvt
    index = tmp_path / "index"
    # Without --preset (and --soft-cap, --num-frames, --size) the index's own are used.
    _, again, out, found = run_all(
        env,
        ["index", videos / "gen0.mp4", "-o", index, *model],
        ["index", videos / "gen0.mp4", videos / "gen1.mp4", "-o", index, *model],
        ["index", videos, "-o", index, "--no-progress", "--json"],
        ["search", index, "--text", "a video", *tok, "--json"],
    )
    assert "skipped 1 already indexed" in again.stdout and "now holds 2" in again.stdout
    done = json.loads(out.stdout)
    # One writer on a local folder: every commit (a delete of older versions of the file,
    # then its clip) made at its first try.
    assert done.pop("commits") == done.pop("commit_attempts") == 2
    assert done == {"index": str(index), "added": 1, "skipped": 2, "size": 3}
    other = ["--preset", golden_dir / "video_small.ckpt.npz"]
    for args in (["index", videos, "-o", index, *other], ["search", index, "--text", "x", *other]):
        out = call(capsys, *args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1
        assert "lvt_small.ckpt.npz" in out.stderr and "video_small.ckpt.npz" in out.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3


def test_index_uses_its_vector_index_above_its_threshold(tmp_path):
    from videoprism_keras.apps import Embeddings, VideoIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 32)).astype("float32")
    names = [f"v{i}" for i in range(500)]
    exact = VideoIndex(ann_threshold=10**9).add(Embeddings(vectors, names))
    approx = VideoIndex(tmp_path / "ix", ann_threshold=300).add(Embeddings(vectors, names))
    queries = vectors[:20] + 0.05 * rng.normal(size=(20, 32)).astype("float32")
    top_exact = [[h.path for h in hits] for hits in exact.search(queries, top_k=5)]
    top_approx = [[h.path for h in hits] for hits in approx.search(queries, top_k=5)]
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_exact, top_approx, strict=True)])
    assert approx.stats().indices and recall > 0.9
    reopened = VideoIndex.load(tmp_path / "ix")  # the stored vector index, not a rebuilt one
    assert reopened.stats().vector_index_id == approx.stats().vector_index_id
    assert reopened.search(queries[:1], 1)[0][0].path == "v0"
    # Incremental adds go into the vector index (no rebuild) and are found.
    extra = rng.normal(size=(50, 32)).astype("float32")
    reopened.add(Embeddings(extra, [f"w{i}" for i in range(50)]))
    assert len(reopened) == 550 and reopened.search(extra[7], 1)[0][0].path == "w7"
    assert reopened.stats().unindexed_rows == 0


def test_index_dtype_is_the_default_not_a_rule():
    from videoprism_keras.cli import UsageError
    from videoprism_keras.cli.models import ModelOptions, index_options

    meta = {"preset": "videoprism_lvt_public_v1_base", "dtype": "bfloat16"}
    for given, used in ((None, "bfloat16"), ("float32", "float32")):
        assert index_options(ModelOptions(dtype=given), meta).dtype == used
    # Adding to an index is another matter: one index, one dtype.
    with pytest.raises(UsageError, match="--dtype bfloat16, not float32"):
        index_options(ModelOptions(dtype="float32"), meta, writing=True)


def test_search_refuses_sampling_other_than_the_index(tmp_path, capsys):
    from videoprism_keras.apps import Embeddings, VideoIndex
    from videoprism_keras.cli import UsageError
    from videoprism_keras.cli.models import ModelOptions, index_options

    meta = {"preset": "videoprism_lvt_public_v1_base", "num_frames": 8, "size": 64}
    assert index_options(ModelOptions(num_frames=8, size=64), meta, same_sampling=True)
    assert index_options(ModelOptions(), meta, same_sampling=True).size == 64  # the index's
    assert index_options(ModelOptions(size=32), meta).size == 32  # serve's uploads: as told
    for given, message in [
        (dict(size=32), "--size 64, not 32"),
        (dict(num_frames=4), "--num-frames 8, not 4"),
    ]:
        with pytest.raises(UsageError, match=message):
            index_options(ModelOptions(**given), meta, same_sampling=True)
    # From the command line: refused before any model loads, in one line.
    index = tmp_path / "ix"
    VideoIndex(index, meta=meta).add(Embeddings(np.eye(2, 32, dtype="float32"), ["a", "b"]))
    query = tmp_path / "q.mp4"
    write_video(query, frames=4, size=(16, 16))
    out = call(capsys, "search", index, "--video", query, "--size", "32")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "built with --size 64, not 32: leave --size out" in out.stderr


def test_search_filters_and_per_video(env, lvt, videos, tmp_path, capsys):
    import shutil

    model, tok = lvt
    library = tmp_path / "library"
    for folder, name in (("x", "gen1.mp4"), ("x", "gen2.mp4"), ("y", "gen0.mp4")):
        (library / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(videos / name, library / folder / name)
    index = tmp_path / "index"
    text = ["--text", "a video", *tok, "--json", "--top-k", "20"]
    query = ["--where", "start_s >= 2 AND duration_s > 4.5", "--under", library / "x"]
    _, best, hits = run_all(
        env,
        ["index", library, "-o", index, "--clip-seconds", "1", *model],  # 4 + 5 + 3 clips
        ["search", index, *text, "--per-video", *model],
        ["search", index, *text, *query, *model],
    )
    best, hits = json.loads(best.stdout), json.loads(hits.stdout)
    assert sorted(os.path.basename(h["path"]) for h in best) == ["gen0.mp4", "gen1.mp4", "gen2.mp4"]
    assert len(hits) == 3 and all(h["start_s"] >= 2 for h in hits)  # gen2 (5 s): 2, 3, 4
    assert {h["path"] for h in hits} == {str((library / "x" / "gen2.mp4").resolve())}
    out = call(capsys, "search", index, *text, "--where", "start_s >>> 2", *model)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--where" in out.stderr
    out = call(capsys, "index", library, "-o", index, "--clip-seconds", "2", *model)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--clip-seconds 1.0, not 2.0" in out.stderr


def test_embed_resume_continues_an_output(env, lvt, videos, tmp_path):
    model, _ = lvt
    out = tmp_path / "e.npz"
    _, resumed = run_all(env, ["embed", videos / "gen0.mp4", "-o", out, *model],
                         ["embed", videos, "-o", out, "--resume", "--json", *model])  # fmt: skip
    result = json.loads(resumed.stdout)
    assert result["resumed"] == 1 and result["shape"] == [3, 32]
    data = np.load(out)
    assert sorted(os.path.basename(p) for p in data["paths"]) == [f"gen{i}.mp4" for i in range(3)]
    assert not (tmp_path / "e.npz.partial").exists()
