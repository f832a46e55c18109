"""`--dtype int8` and `--engine` end to end at the CLI (the small LvT checkpoint): `embed`
writes embeddings close to float32's; an index records its dtype and engine, which
`search` and `serve` then use without flags and `index` refuses to mix; an index written
before engines reads as Keras; `eval` keeps an int8 run's cache apart from float32's; a
wrong or unavailable engine is one line, before the model loads."""

import json

import numpy as np
import pytest
from cli_helpers import call, run_all
from videos import lavfi_video

# Cosine of the small checkpoint's int8 video embeddings to its float32 ones, measured on
# these clips (the lowest of three): Keras int8 (JAX) 0.99989, OpenVINO (NNCF) 0.99992; ONNX
# Runtime 0.99991, OpenVINO bfloat16 0.99998. The bound leaves eight times the largest error.
INT8_COSINE = 0.999


def _cosines(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    rows = []
    for i, source in enumerate(("testsrc2", "mandelbrot", "rgbtestsrc")):
        lavfi_video(folder / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
        rows.append(f"v{i}.mp4,{source} pattern")
    (folder / "captions.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    return folder / "captions.csv"


@pytest.fixture(scope="module")
def runs(env, lvt, videos, captions, lora_adapter, golden_dir, media_dir, tmp_path_factory):
    """Every command of the tests below, in turn in one interpreter (each loads its model),
    with --engine's own default (auto; the suite's is $VIDEOPRISM_ENGINE=keras): name →
    (result, its folder)."""
    env = {name: value for name, value in env.items() if name != "VIDEOPRISM_ENGINE"}
    model, tok = lvt
    out = tmp_path_factory.mktemp("runs")
    index, keras_int8 = out / "index", ["--dtype", "int8", "--engine", "keras"]
    openvino_int8 = ["--dtype", "int8", "--engine", "openvino"]
    evaluate = ["eval", "retrieval", captions, "--preset", golden_dir / "lvt_small.ckpt.npz",
                "--soft-cap", "5", "--tokenizer", media_dir / "test_spm.model", "--num-frames",
                "2", "--size", "36", "--no-progress", "--bootstrap", "20", "--cache",
                out / "cache", "--json"]  # fmt: skip
    commands = {
        "embed f32": ["embed", videos, "-o", out / "f32.npz", *model],  # auto: OpenVINO
        "embed keras": ["embed", videos, "-o", out / "keras.npz", *model, "--engine", "keras"],
        "embed int8": ["embed", videos, "-o", out / "int8.npz", *model, *keras_int8],
        "embed openvino": ["embed", videos, "-o", out / "openvino.npz", *model, *openvino_int8],
        "index": ["index", videos, "-o", index, *model, *tok, *openvino_int8],
        "search": ["search", index, "--video", videos / "gen1.mp4", "--json", "--no-progress"],
        "index f32": ["index", videos, "-o", index, *model, "--dtype", "float32"],
        "index keras": ["index", videos, "-o", index, *model, "--engine", "keras"],
        "moments": [
            "moments",
            videos / "gen2.mp4",
            "--text",
            "a video",
            *model,
            *tok,
            *openvino_int8,
            "--clip-seconds",
            "2",
            "--json",
        ],
        "eval int8": [*evaluate, "--dtype", "int8"],  # auto: OpenVINO, installed here
        "eval f32": evaluate,
        "eval lora": [*evaluate, *keras_int8, "--lora", lora_adapter],  # quantized once merged
    }
    results = run_all(env, *commands.values(), ok=False)
    return dict(zip(commands, results, strict=True)), out


def _ok(result):
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_float32_runs_on_openvino_by_default_as_exact_as_keras(runs):
    done, out = runs
    said = _ok(done["embed f32"]).stderr
    assert "videoprism: engine: OpenVINO" in said and "float32" in said
    assert "auto's first choice for float32" in said  # says which, and why
    assert "engine:" not in _ok(done["embed keras"]).stderr  # Keras float32: the reference
    auto, reference = np.load(out / "f32.npz"), np.load(out / "keras.npz")
    assert list(auto["paths"]) == list(reference["paths"])
    assert _cosines(auto["vectors"], reference["vectors"]).min() > 0.99999  # the exact tier
    np.testing.assert_allclose(auto["vectors"], reference["vectors"], atol=1e-5)


def test_the_default_engine_comes_from_the_environment(runs, videos, lvt, capsys, monkeypatch,
                                                       tmp_path):  # fmt: skip
    _, out = runs
    model, _ = lvt
    monkeypatch.setenv("VIDEOPRISM_ENGINE", "keras")
    ran = call(capsys, "embed", videos, "-o", tmp_path / "k.npz", *model)
    assert ran.returncode == 0 and "engine:" not in ran.stderr, ran.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k.npz")["vectors"],
                                  np.load(out / "keras.npz")["vectors"])  # fmt: skip
    monkeypatch.setenv("VIDEOPRISM_ENGINE", "tpu")  # refused before the model loads
    refused = call(capsys, "embed", videos, "-o", tmp_path / "t.npz", "--preset",
                   tmp_path / "none.npz")  # fmt: skip
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "$VIDEOPRISM_ENGINE must be one of auto, keras, openvino, onnxruntime" in refused.stderr
    assert "got 'tpu'" in refused.stderr and "Traceback" not in refused.stderr
    flag = call(capsys, "embed", videos, "-o", tmp_path / "t.npz", *model, "--engine", "keras")
    assert flag.returncode == 0, flag.stderr  # the flag wins over the variable


def test_auto_float32_runs_keras_where_openvino_does_not_match_the_model(runs, videos, lvt,
                                                                         capsys, monkeypatch,
                                                                         tmp_path):  # fmt: skip
    from helpers import openvino_float32_mismatches

    _, out = runs
    model, _ = lvt
    monkeypatch.delenv("VIDEOPRISM_ENGINE")
    openvino_float32_mismatches(monkeypatch)
    ran = call(capsys, "embed", videos, "-o", tmp_path / "f.npz", *model)
    assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    assert "videoprism: engine: OpenVINO" in ran.stderr  # auto's choice, said first
    assert "does not match; auto runs float32 on Keras instead" in ran.stderr  # then this
    np.testing.assert_allclose(np.load(tmp_path / "f.npz")["vectors"],
                               np.load(out / "keras.npz")["vectors"], atol=1e-6)  # fmt: skip
    named = call(capsys, "embed", videos, "-o", tmp_path / "n.npz", *model, "--engine",
                 "openvino")  # fmt: skip
    assert named.returncode == 1 and "does not match" in named.stderr  # as asked: an error
    assert "Traceback" not in named.stderr


def test_embed_int8_is_close_to_float32_and_says_its_engine(runs):
    done, out = runs
    assert "videoprism: engine: Keras" in _ok(done["embed int8"]).stderr
    assert "videoprism: engine: OpenVINO" in _ok(done["embed openvino"]).stderr
    f32 = np.load(out / "f32.npz")
    for name in ("int8", "openvino"):
        int8 = np.load(out / f"{name}.npz")
        assert list(f32["paths"]) == list(int8["paths"])
        assert _cosines(f32["vectors"], int8["vectors"]).min() > INT8_COSINE, name
        assert np.abs(f32["vectors"] - int8["vectors"]).max() > 1e-4, name  # it ran in int8


def test_an_int8_index_keeps_its_dtype_and_engine(runs):
    from videoprism_keras.apps import VideoIndex

    done, out = runs
    _ok(done["index"])
    meta = VideoIndex.load(out / "index").meta
    assert (meta["dtype"], meta["engine"]) == ("int8", "openvino")
    # search: the index's dtype and engine without flags, so the clip finds itself exactly.
    searched = _ok(done["search"])
    assert "videoprism: engine: OpenVINO" in searched.stderr and "int8" in searched.stderr
    hits = json.loads(searched.stdout)
    assert hits[0]["path"].endswith("gen1.mp4") and hits[0]["score"] > 0.99999
    # Writing another dtype or engine into it is refused, naming the flags.
    for name, flag in (("index f32", "--dtype int8, not float32"),
                       ("index keras", "--engine openvino, not keras")):  # fmt: skip
        refused = done[name]
        assert refused.returncode == 2
        assert f"the index was built with {flag}: leave" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_moments_stream_and_refine_on_the_engine(runs):
    done, _ = runs
    found = _ok(done["moments"])
    assert found.stderr.count("videoprism: engine: OpenVINO") == 1  # one Encoder for all
    assert isinstance(json.loads(found.stdout), list)


def test_an_index_written_before_engines_reads_as_keras(tmp_path):
    from videoprism_keras.apps import Embeddings, VideoIndex
    from videoprism_keras.cli import UsageError
    from videoprism_keras.cli.models import ModelOptions, index_options

    old = {"preset": "videoprism_lvt_public_v1_base", "num_frames": 4, "size": 16,
           "dtype": "float32"}  # fmt: skip
    held = VideoIndex(tmp_path / "old", meta=old)
    rng = np.random.default_rng(0)
    held.add(Embeddings(rng.normal(size=(3, 8)).astype("float32"), ["a", "b", "c"]))
    assert "engine" not in held.meta
    assert index_options(ModelOptions(engine="auto"), held.meta).engine == "keras"
    assert index_options(ModelOptions(engine="openvino"), held.meta).engine == "openvino"
    with pytest.raises(UsageError, match="built with --engine keras, not openvino"):
        index_options(ModelOptions(engine="openvino"), held.meta, writing=True)
    held.check_settings({"engine": "keras", "dtype": "float32"})
    with pytest.raises(ValueError, match="engine='keras'; got engine='openvino'"):
        held.check_settings({"engine": "openvino", "dtype": "float32"})
    # An engine other than Keras records the precision it ran in.
    bf16 = {**old, "engine": "openvino", "dtype": "bfloat16"}
    index_options(ModelOptions(dtype="mixed_bfloat16", engine="auto"), bf16, writing=True)
    with pytest.raises(UsageError, match="built with --dtype bfloat16, not int8"):
        index_options(ModelOptions(dtype="int8", engine="auto"), bf16, writing=True)
    # A new index has no engine of its own: the flag's choice stands.
    assert index_options(ModelOptions(engine="auto"), {}).engine == "auto"


def test_serve_answers_from_an_int8_index(runs, videos, env, monkeypatch):
    from fastapi.testclient import TestClient

    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.cli import serve as serve_cli
    from videoprism_keras.cli.models import ModelOptions, index_options

    done, out = runs
    _ok(done["index"])
    monkeypatch.setenv("VIDEOPRISM_CACHE", env["VIDEOPRISM_CACHE"])  # the index's artefact
    held = VideoIndex.load(out / "index", in_memory=True)
    options = index_options(ModelOptions(engine="auto", progress=False), held.meta)
    assert (options.dtype, options.engine) == ("int8", "openvino")
    app = serve_cli._app(held, options, None, ["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        found = client.post("/api/search/upload", content=(videos / "gen2.mp4").read_bytes(),
                            params={"top_k": 1}, headers={"Content-Type": "video/mp4"})  # fmt: skip
        assert found.status_code == 200, found.text
        (hit,) = found.json()["hits"]
        assert hit["path"].endswith("gen2.mp4") and hit["score"] > 0.99999
        text = client.get("/api/search", params={"q": "a video", "top_k": 2})
        assert text.status_code == 200 and len(text.json()["hits"]) == 2
        engine = client.get("/api/info").json()["engine"]
        assert engine.startswith("OpenVINO") and "int8" in engine


def test_eval_records_dtype_and_engine_and_keeps_the_caches_apart(runs):
    done, _ = runs
    int8, exact = _ok(done["eval int8"]), _ok(done["eval f32"])
    records = [json.loads(run.stdout)["model"] for run in (int8, exact)]
    assert (records[0]["dtype"], records[0]["engine"]) == ("int8", "openvino")
    assert (records[1]["dtype"], records[1]["engine"]) == ("float32", "openvino")  # auto
    assert records[0]["key"] != records[1]["key"]
    tuned = json.loads(_ok(done["eval lora"]).stdout)["model"]
    assert (
        tuned["dtype"] == "int8"
        and tuned["lora"]
        and tuned["key"] not in {r["key"] for r in records}
    )
    # float32 does not take int8's cached embeddings (the same cache folder).
    assert "videos: 3 embedded, 0 from the cache" in int8.stderr
    assert "videos: 3 embedded, 0 from the cache" in exact.stderr


def test_train_offers_no_int8_and_a_wrong_engine_is_refused(videos, tmp_path, capsys):
    out = call(capsys, "train", videos, "-o", tmp_path / "c.keras", "--dtype", "int8")
    assert out.returncode == 2 and "invalid choice: 'int8'" in out.stderr
    out = call(capsys, "embed", videos, "-o", tmp_path / "e.npz", "--engine", "tpu")
    assert out.returncode == 2 and "invalid choice: 'tpu'" in out.stderr


def _without(monkeypatch, *absent):
    """The engines' packages `absent` as if not installed."""
    from videoprism_keras import extras

    installed = extras.installed
    monkeypatch.setattr(extras, "installed", lambda p: p not in absent and installed(p))


def test_an_engine_that_cannot_run_is_one_line(videos, tmp_path, capsys, monkeypatch):

    embed = ["embed", videos, "-o", tmp_path / "e.npz", "--preset", tmp_path / "none.npz"]
    _without(monkeypatch, "openvino", "nncf", "onnxruntime")
    out = call(capsys, *embed, "--engine", "openvino", "--dtype", "int8")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert (
        "--engine openvino needs openvino and nncf, which are not installed: pip install"
        in out.stderr
        and len(out.stderr.strip().splitlines()) == 1
    )
    monkeypatch.undo()
    out = call(capsys, *embed, "--engine", "onnxruntime", "--dtype", "bfloat16")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (
        "--engine onnxruntime --dtype bfloat16 on the jax backend: ONNX Runtime's CPU provider"
        in out.stderr
        and "--engine openvino (or 'keras')" in out.stderr
    )


def test_an_index_engine_not_installed_here_is_named(runs, capsys, monkeypatch):
    done, out = runs
    _ok(done["index"])
    _without(monkeypatch, "openvino", "nncf")
    said = call(capsys, "search", out / "index", "--text", "a video")
    assert said.returncode == 2 and len(said.stderr.strip().splitlines()) == 1
    assert (
        "the index's engine: --engine openvino needs openvino and nncf, which are not "
        "installed: pip install"
        in said.stderr
        and "may pass --engine keras" in said.stderr
    )
