"""--ray on an engine other than Keras: the driver builds (or finds) the one artefact, every
actor installs it and embeds with it, so a Ray run gives the local run's int8 embeddings
and records its dtype and engine (the small LvT checkpoint, OpenVINO int8)."""

import json

import numpy as np
import pytest
from cli_helpers import call
from ray_helpers import assert_same_index
from videos import lavfi_video

import videoprism_keras as vp
from videoprism_keras import cli
from videoprism_keras.apps import VideoIndex, embed_videos
from videoprism_keras.apps import ray_pipeline as rp
from videoprism_keras.apps.embed_writer import EmbeddingWriter
from videoprism_keras.apps.ray_engine import ShippedArtefact
from videoprism_keras.engine import artefacts
from videoprism_keras.model.quantization import model_precision
from videoprism_keras.runtime import Encoder

ray = pytest.importorskip("ray")
pytest.importorskip("openvino")
pytest.importorskip("nncf")

SAMPLING = dict(num_frames=4, size=(16, 16))
# One artefact embeds both runs: the same numbers up to the actors' float32 reductions.
SAME = 1e-5


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Our cache for the module: the Ray workers' too (requested before `ray_local` starts
    them, they inherit it), so that no test writes into the user's. And --engine's own
    default (auto), not the suite's $VIDEOPRISM_ENGINE=keras."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDEOPRISM_CACHE", str(root))
        patch.delenv("VIDEOPRISM_ENGINE")
        yield root


@pytest.fixture(scope="module")
def flags(golden_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames",
            "4", "--size", "16", "--no-progress", "--dtype", "int8"]  # fmt: skip


def _by_path(npz):
    held = np.load(npz)
    order = np.argsort(held["paths"])
    return list(held["paths"][order]), held["vectors"][order]


def _artefact_folders(root):
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_embed_on_ray_gives_the_local_int8_embeddings(cache, ray_local, flags, videos,
                                                     tmp_path, capsys):  # fmt: skip
    openvino = [*flags, "--engine", "openvino"]
    assert cli.main([str(a) for a in ["embed", videos, "-o", tmp_path / "l.npz", *openvino]]) == 0
    capsys.readouterr()
    assert cli.main([str(a) for a in ["embed", videos, "-o", tmp_path / "r.npz", *openvino,
                                      "--ray", ray_local]]) == 0  # fmt: skip
    said = [line for line in capsys.readouterr().err.splitlines() if "engine:" in line]
    assert said == ["videoprism: engine: OpenVINO int8 in each Ray actor (OpenVINO int8, as "
                    "asked)"]  # fmt: skip
    local_paths, local = _by_path(tmp_path / "l.npz")
    ray_paths, on_ray = _by_path(tmp_path / "r.npz")
    assert ray_paths == local_paths and len(local) == 3
    assert np.abs(on_ray - local).max() < SAME
    # The driver found the local run's artefact: still one in the cache.
    assert len(_artefact_folders(cache / "engines")) == 1


def test_index_on_ray_in_int8_records_and_holds_what_a_local_run_does(cache, ray_local, flags,
                                                                      videos,
                                                                      tmp_path):  # fmt: skip
    for name, extra in (("local", []), ("ray", ["--ray", ray_local])):
        args = ["index", videos, "-o", tmp_path / name, *flags, *extra]
        assert cli.main([str(a) for a in args]) == 0
    local, on_ray = VideoIndex(tmp_path / "local"), VideoIndex(tmp_path / "ray")
    assert on_ray.meta["dtype"] == local.meta["dtype"] == "int8"
    assert on_ray.meta["engine"] == local.meta["engine"] == "openvino"  # auto's pick here
    assert_same_index(on_ray, local, atol=SAME)
    # Adding to it again on Ray is the same model: accepted, nothing new to embed.
    again = ["index", videos, "-o", tmp_path / "ray", "--ray", ray_local, "--no-progress"]
    assert cli.main([str(a) for a in again]) == 0


def test_keras_int8_actors_quantize_what_they_load(golden_dir):
    # The CLI's loader for --dtype int8 --engine keras: the actors' model is Keras' int8,
    # as the driver's (`ModelOptions.load` quantizes it the same way).
    loader = rp.PresetLoader(str(golden_dir / "lvt_small.ckpt.npz"),
                             {"attention_logit_soft_cap": 5.0}, quantize="int8")  # fmt: skip
    assert model_precision(loader()) == "int8"
    assert model_precision(rp.PresetLoader(loader.preset, loader.overrides)()) == "float32"


def test_eval_on_ray_in_int8_gives_the_local_record(cache, ray_local, golden_dir, media_dir,
                                                   tmp_path, capsys):  # fmt: skip
    folder = tmp_path / "eval"
    folder.mkdir()
    rows = []
    for i, source in enumerate(("testsrc2", "mandelbrot", "rgbtestsrc")):
        lavfi_video(folder / f"v{i}.mp4", [(source, 1)], fps=4, size=(48, 36))
        rows.append(f"v{i}.mp4,{source} pattern")
    (folder / "captions.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    evaluate = ["eval", "retrieval", folder / "captions.csv", "--preset",
                golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--tokenizer",
                media_dir / "test_spm.model", "--num-frames", "2", "--size", "36",
                "--no-progress", "--bootstrap", "20", "--json", "--dtype", "int8"]  # fmt: skip
    local = call(capsys, *evaluate, "--cache", tmp_path / "local")
    on_ray = call(capsys, *evaluate, "--cache", tmp_path / "ray", "--ray", ray_local)
    assert local.returncode == on_ray.returncode == 0, on_ray.stderr[-2000:]
    local, on_ray = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert on_ray["model"] == local["model"]  # dtype, engine, key
    assert (local["model"]["dtype"], local["model"]["engine"]) == ("int8", "openvino")
    for name, value in local["metrics"].items():
        assert on_ray["metrics"][name] == pytest.approx(value, abs=1e-6), name


def test_actors_install_the_drivers_artefact_and_build_none(cache, ray_local, golden_dir,
                                                           videos, tmp_path):  # fmt: skip
    model = vp.VideoPrismBackbone.from_preset(golden_dir / "lvt_small.ckpt.npz",
                                              attention_logit_soft_cap=5.0)  # fmt: skip
    driver, actors = tmp_path / "driver", tmp_path / "actors"
    assert _embed_on_ray(model, videos, tmp_path / "e.npz", driver, actors) == 3
    # The driver built one artefact (calibrated on the job's first clips); the actors'
    # fresh cache holds it, installed: the same meta (its creation time included) and files.
    (built,) = _artefact_folders(driver)
    (installed,) = _artefact_folders(actors)
    assert installed.name == built.name
    assert artefacts.read_meta(installed) == artefacts.read_meta(built)
    assert artefacts.files_of(installed) == artefacts.files_of(built)
    assert artefacts.read_meta(built)["calibration_used"] == "3 clips"
    # A local Encoder on the driver's cache finds the same artefact: the same embeddings.
    encoder = Encoder(model, engine="openvino", precision="int8", cache_dir=driver)
    local = embed_videos(model, sorted(videos.glob("*.mp4")), batch_size=2, progress=False,
                         encoder=encoder, **SAMPLING)  # fmt: skip
    assert encoder.artefact == json.loads((built / "meta.json").read_text())["key"]
    paths, on_ray = _by_path(tmp_path / "e.npz")
    order = np.argsort(local.paths)
    assert paths == [local.paths[i] for i in order]
    assert np.abs(on_ray - local.vectors[order]).max() < SAME
    # Another driver's build of the key (its cache was emptied, the clips were others):
    # an actor whose cache holds the first installs the new one beside it, and embeds
    # with that one, building nothing.
    other = {**artefacts.read_meta(built), "created": "another build"}
    files = ray.put(artefacts.files_of(built))
    shipped = ShippedArtefact("openvino", "int8", files, other, str(actors))
    encoder = shipped.encoder(model)
    encoder.video(np.zeros((1, 4, 16, 16, 3), np.float32))
    (beside,) = _artefact_folders(actors / "ray")
    assert artefacts.read_meta(beside / built.name) == other
    assert encoder.artefact == other["key"]
    assert artefacts.read_meta(installed) == artefacts.read_meta(built)  # left as it was


def _embed_on_ray(model, videos, output, driver, actors):
    """`embed_on_ray` of `videos` on OpenVINO int8, the driver's and the actors' engine
    caches given; the items written."""
    choice = rp.EngineChoice("openvino", "int8", cache_dir=str(driver),
                             actor_cache_dir=str(actors))  # fmt: skip
    writer = EmbeddingWriter(output, {"test": 1})
    run = rp.embed_on_ray(model, [videos], writer, **SAMPLING,
                          options=rp.RayOptions(batch_size=2, engine=choice))  # fmt: skip
    writer.finish("video")
    return run.written
