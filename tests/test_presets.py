"""from_preset / save_to_preset: built-in names, hub handles, caches, interop, failures."""

import fnmatch
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import random_text, random_video, to_numpy
from preset_fakes import (
    TINY_FILE,
    TINY_PRESET,
    TINY_REPO,
    put_in_hf_cache,
    put_in_modelscope_cache,
    register_tiny_preset,
)

import videoprism_keras as vp
from videoprism_keras import hub, saving

GOLDEN_CAP = dict(attention_logit_soft_cap=5.0)


@pytest.fixture()
def tiny_preset(caches, golden_dir, media_dir, monkeypatch):
    """The tiny preset, downloadable from a local HF cache, with a file:// tokenizer URL."""
    register_tiny_preset(monkeypatch)
    put_in_hf_cache(caches[1], TINY_REPO, TINY_FILE, golden_dir / "lvt_small.ckpt.npz")
    monkeypatch.setattr(hub, "TOKENIZER_URL", (media_dir / "test_spm.model").as_uri())
    return caches


def embeddings(model, seed=0):
    ids, mask = random_text(vocab=1000, seed=seed)
    video = model.encode_video(random_video(seed=seed))["vision_embeddings"]
    return to_numpy(video), to_numpy(model.encode_text(ids, mask))


def test_presets_are_documented():
    assert set(vp.VideoPrismBackbone.presets) == {
        "videoprism_public_v1_base",
        "videoprism_lvt_public_v1_base",
        "videoprism_public_v1_large",
        "videoprism_lvt_public_v1_large",
    }
    for meta in vp.VideoPrismBackbone.presets.values():
        assert {"description", "params", "num_frames", "resolution", "source", "license"} <= set(
            meta
        )
    assert vp.VideoPrismBackbone.presets["videoprism_public_v1_large"]["num_frames"] == 8
    readme = (Path(__file__).parents[1] / "docs" / "presets.md").read_text()  # the presets page
    assert all(name in readme for name in vp.VideoPrismBackbone.presets)


def test_architecture_only_downloads_nothing(caches):
    model = vp.VideoPrismBackbone.from_preset("videoprism_public_v1_base", load_weights=False)
    assert (
        model.count_params() == vp.VideoPrismBackbone.presets["videoprism_public_v1_base"]["params"]
    )
    assert not caches[0].exists() and not caches[1].exists()


def test_unknown_preset_lists_presets_and_close_names():
    with pytest.raises(ValueError) as info:
        vp.VideoPrismBackbone.from_preset("videoprism_public_v1_bse")
    message = str(info.value)
    assert "Did you mean 'videoprism_public_v1_base'" in message
    assert "videoprism_lvt_public_v1_large" in message


def test_offline_with_nothing_cached_names_the_file(caches):
    with pytest.raises(hub.PresetUnavailableError) as info:
        vp.VideoPrismBackbone.from_preset("videoprism_lvt_public_v1_base")
    message = str(info.value)
    assert "flax_lvt_base_f16r288_repeated.npz" in message
    assert "huggingface.co/google/videoprism-lvt-base-f16r288" in message
    assert "from_preset('/path/to/" in message
    assert not any(caches[0].glob("videoprism_*"))  # nothing half-written


@pytest.mark.backend
def test_builtin_preset_converts_once_then_loads_from_cache(tiny_preset, golden_dir, monkeypatch):
    reference = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    first = vp.VideoPrismBackbone.from_preset(TINY_PRESET)
    cached = tiny_preset[0] / TINY_PRESET
    assert {p.name for p in cached.iterdir()} == {
        "config.json",
        "model.weights.h5",
        "metadata.json",
        "assets",
    }
    assert (cached / "assets" / "tokenizer" / "vocabulary.spm").is_file()

    def no_download(*args, **kwargs):
        raise AssertionError("the second load must come from the cache")

    monkeypatch.setattr(hub, "hf_download", no_download)
    second = vp.VideoPrismBackbone.from_preset(TINY_PRESET)
    for model in (first, second):
        for ours, theirs in zip(embeddings(model), embeddings(reference), strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert second.tokenizer_file.endswith("vocabulary.spm")


def test_interrupted_conversion_leaves_nothing(tiny_preset, monkeypatch):
    calls, save = [], saving.save_backbone

    def broken_save(model, out, **kwargs):
        (Path(out) / "model.weights.h5").write_bytes(b"half")
        calls.append(out)
        raise KeyboardInterrupt("killed midway")

    monkeypatch.setattr(saving, "save_backbone", broken_save)
    with pytest.raises(KeyboardInterrupt):
        vp.VideoPrismBackbone.from_preset(TINY_PRESET)
    assert calls and not any(tiny_preset[0].glob(f"*{TINY_PRESET}*/*"))
    monkeypatch.setattr(saving, "save_backbone", save)
    model = vp.VideoPrismBackbone.from_preset(TINY_PRESET)  # redone from scratch
    assert hub.is_preset_dir(tiny_preset[0] / TINY_PRESET) and model.is_multimodal


def test_two_processes_convert_once(tiny_preset, tmp_path):
    log = tmp_path / "conversions.log"
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        import huggingface_hub.constants as c
        c.HF_HUB_CACHE = {str(tiny_preset[1])!r}
        from preset_fakes import register_tiny_preset, TINY_PRESET
        import videoprism_keras as vp
        from videoprism_keras import saving
        register_tiny_preset()
        convert = saving._convert_official
        def logged(cls, name, out):
            open({str(log)!r}, "a").write("converted\\n")
            convert(cls, name, out)
        saving._convert_official = logged
        model = vp.VideoPrismBackbone.from_preset(TINY_PRESET)
        print(model.count_params())
        """
    )
    env = {**os.environ, "VIDEOPRISM_CACHE": str(tiny_preset[0]), "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert outputs[0][0].strip() == outputs[1][0].strip()
    assert log.read_text().count("converted") == 1
    assert hub.is_preset_dir(tiny_preset[0] / TINY_PRESET)
    assert not list(tiny_preset[0].glob(".*partial*"))


def test_corrupt_cached_weights_are_reported(tiny_preset):
    vp.VideoPrismBackbone.from_preset(TINY_PRESET)
    weights = tiny_preset[0] / TINY_PRESET / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model\.weights\.h5"):
        vp.VideoPrismBackbone.from_preset(TINY_PRESET)


@pytest.mark.backend
def test_save_to_preset_round_trip(tmp_path, golden_dir, media_dir):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    model.tokenizer_file = str(media_dir / "test_spm.model")
    model.save_to_preset(tmp_path / "preset")
    assert (tmp_path / "preset" / "assets" / "tokenizer" / "vocabulary.spm").is_file()
    loaded = vp.VideoPrismBackbone.from_preset(tmp_path / "preset")
    for ours, theirs in zip(embeddings(loaded), embeddings(model), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.backend
def test_overrides_resize_position_tables(tmp_path, golden_dir):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    model.save_to_preset(tmp_path / "preset")
    eight = vp.VideoPrismBackbone.from_preset(tmp_path / "preset", num_frames=8)
    assert eight.num_frames == 8 and eight.video_encoder.temporal_positions.table.shape == (8, 32)
    video = random_video(batch=1, frames=8)
    np.testing.assert_allclose(
        to_numpy(eight.encode_video(video)["vision_embeddings"]),
        to_numpy(model.encode_video(video)["vision_embeddings"]),
        atol=1e-5,
    )
    from_npz = vp.VideoPrismBackbone.from_preset(
        golden_dir / "lvt_small.ckpt.npz", num_frames=8, **GOLDEN_CAP
    )
    np.testing.assert_allclose(
        to_numpy(from_npz.encode_video(video)["vision_embeddings"]),
        to_numpy(eight.encode_video(video)["vision_embeddings"]),
        atol=1e-5,
    )


def test_hf_handle_from_the_offline_cache(tiny_preset, golden_dir):
    put_in_hf_cache(
        tiny_preset[1], "someone/videoprism-copy", "weights.npz", golden_dir / "lvt_small.ckpt.npz"
    )
    model = vp.VideoPrismBackbone.from_preset("hf://someone/videoprism-copy", **GOLDEN_CAP)
    assert model.is_multimodal and model.vocabulary_size == 1000
    model = vp.VideoPrismBackbone.from_preset(
        "hf://someone/videoprism-copy/weights.npz", **GOLDEN_CAP
    )
    assert model.num_text_layers == 2


@pytest.fixture()
def modelscope_cache(caches, tmp_path, monkeypatch):
    """An empty ModelScope cache (and settings folder) of this test's own. modelscope reads
    its environment when it first makes its process-wide settings: they are made anew."""
    hub_config = pytest.importorskip("modelscope_hub.config")
    cache = tmp_path / "modelscope_cache"
    monkeypatch.setenv("MODELSCOPE_CACHE", str(cache))
    monkeypatch.setenv("MODELSCOPE_HOME", str(tmp_path / "modelscope_home"))
    monkeypatch.setattr(hub_config, "_default_config", hub_config.HubConfig())
    return cache


@pytest.mark.parametrize("legacy", [False, True], ids=["cache", "pre-1.38-cache"])
def test_modelscope_handle_from_the_offline_cache(modelscope_cache, golden_dir, legacy):
    npz = golden_dir / "lvt_small.ckpt.npz"
    put_in_modelscope_cache(modelscope_cache, "someone/videoprism-v1.0", npz, legacy)
    model = vp.VideoPrismBackbone.from_preset("modelscope://someone/videoprism-v1.0", **GOLDEN_CAP)
    assert model.is_multimodal and model.vocabulary_size == 1000
    model = vp.VideoPrismBackbone.from_preset(
        f"modelscope://someone/videoprism-v1.0/{npz.name}", **GOLDEN_CAP
    )
    assert model.num_text_layers == 2


def test_modelscope_handle_to_a_saved_preset(modelscope_cache, golden_dir, media_dir, tmp_path):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    model.tokenizer_file = str(media_dir / "test_spm.model")
    model.save_to_preset(tmp_path / "preset")
    put_in_modelscope_cache(modelscope_cache, "someone/videoprism-preset", tmp_path / "preset")
    handle = "modelscope://someone/videoprism-preset"
    loaded = vp.VideoPrismBackbone.from_preset(handle)
    for ours, theirs in zip(loaded.weights, model.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs), err_msg=ours.path)
    assert Path(loaded.tokenizer_file).is_relative_to(modelscope_cache)  # the preset's own
    assert vp.VideoPrismTokenizer.from_preset(handle).vocabulary_size == 1000
    fresh = vp.VideoPrismBackbone.from_preset(handle, load_weights=False, num_frames=8)
    assert fresh.video_encoder.temporal_positions.table.shape == (8, 32)


@pytest.mark.parametrize("file", ["", "/weights.npz"], ids=["repo", "file"])
def test_modelscope_offline_with_nothing_cached_names_the_file(modelscope_cache, file):
    with pytest.raises(hub.PresetUnavailableError) as info:
        vp.VideoPrismBackbone.from_preset(f"modelscope://someone/nothing{file}")
    wanted = "/path/to/" + ("weights.npz" if file else "nothing")
    assert "modelscope.cn/models/someone/nothing" in str(info.value)
    assert "HF_HUB_OFFLINE is set" in str(info.value)
    assert f"from_preset('{wanted}')" in str(info.value)
    assert info.value.cli_message.endswith(f"--preset {wanted}")
    assert "'weights.npz'" in str(info.value) if file else "official .npz" in str(info.value)
    assert not [p for p in modelscope_cache.rglob("*") if p.is_file()]  # nothing half-written


def test_modelscope_downloads_only_what_it_needs(tmp_path, golden_dir, monkeypatch):
    """Online (a stand-in for modelscope's downloads over two repos): a preset's config
    alone for its architecture, the whole preset for its weights, a repo's one .npz."""
    remote, local, fetched = tmp_path / "remote", tmp_path / "local", []
    put_in_modelscope_cache(remote, "someone/npz", golden_dir / "lvt_small.ckpt.npz", True)
    (remote / "models" / "someone" / "npz" / "README.md").write_text("an official .npz")
    preset = remote / "models" / "someone" / "preset"
    preset.mkdir(parents=True)
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        (preset / name).write_text("{}")

    def snapshot_download(repo, allow_file_pattern=None, local_files_only=False):
        if local_files_only:
            raise FileNotFoundError("not cached")
        fetched.append((repo, allow_file_pattern))
        source, out = remote / "models" / repo, local / repo
        for path in source.rglob("*"):
            if fnmatch.fnmatch(path.name, allow_file_pattern or "*"):
                out.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, out / path.name)
        return str(out)

    monkeypatch.setattr(hub, "_modelscope", lambda: (pytest.fail, snapshot_download))
    monkeypatch.setattr(hub, "reachable", lambda url: True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert hub.resolve("modelscope://someone/preset", config_only=True) == local / "someone/preset"
    assert fetched == [("someone/preset", "config.json")]
    assert sorted(os.listdir(local / "someone/preset")) == ["config.json"]
    assert hub.resolve("modelscope://someone/preset") == local / "someone/preset"
    assert len(os.listdir(local / "someone/preset")) == 3
    fetched.clear()
    assert hub.resolve("modelscope://someone/npz") == local / "someone/npz/lvt_small.ckpt.npz"
    assert fetched == [("someone/npz", "config.json"), ("someone/npz", "*.npz")]
    assert sorted(os.listdir(local / "someone/npz")) == ["lvt_small.ckpt.npz"]


def keras_hub_preset(path, multimodal=True):
    """A small keras_hub VideoPrism with random weights, saved by keras_hub itself."""
    keras_hub = pytest.importorskip("keras_hub")
    text = (
        dict(num_auxiliary_layers=1, vocabulary_size=50, num_text_layers=2)
        if multimodal
        else dict(num_auxiliary_layers=0)
    )
    model = keras_hub.models.VideoPrismBackbone(
        num_frames=4, patch_size=4, hidden_dim=16, intermediate_dim=64, num_heads=2,
        num_spatial_layers=2, num_temporal_layers=1, attention_logit_soft_cap=5.0,
        image_shape=(16, 16, 3), **text,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for w in model.weights:
        if not w.path.startswith(
            "text_encoder/ln/"
        ):  # keras_hub's converter leaves this at identity
            w.assign(rng.normal(size=w.shape).astype("float32") * 0.2 + (w.path.endswith("gamma")))
    model.save_to_preset(path)
    return model


@pytest.mark.parametrize("multimodal", [True, False], ids=["lvt", "video"])
def test_keras_hub_presets_give_keras_hub_outputs(tmp_path, multimodal):
    if keras.backend.backend() != "jax":
        pytest.skip("compared once, under JAX")
    theirs = keras_hub_preset(tmp_path / "kh", multimodal)
    ours = vp.VideoPrismBackbone.from_preset(tmp_path / "kh")
    video = random_video()
    if not multimodal:
        expected = theirs.predict(video, verbose=0)
        np.testing.assert_allclose(
            to_numpy(ours(video)).reshape(expected.shape), expected, atol=1e-5
        )
        return
    ids, mask = random_text(batch=2)
    expected = theirs.predict(
        {"pixel_values": video, "token_ids": ids, "padding_mask": mask}, verbose=0
    )
    # keras_hub returns unnormalised embeddings (its docs say otherwise); ours are normalised.
    got_video = to_numpy(ours.encode_video(video, normalize=False)["vision_embeddings"])
    got_text = to_numpy(ours.encode_text(ids, mask, normalize=False))
    np.testing.assert_allclose(got_video, expected["vision_embeddings"], atol=1e-5)
    np.testing.assert_allclose(got_text, expected["text_embeddings"], atol=1e-5)
    normalised = to_numpy(ours({"pixel_values": video})["vision_embeddings"])
    np.testing.assert_allclose(
        normalised, got_video / np.linalg.norm(got_video, axis=-1, keepdims=True), atol=1e-5
    )


def test_kaggle_handle_goes_through_kagglehub(tmp_path, monkeypatch):
    if keras.backend.backend() != "jax":
        pytest.skip("compared once, under JAX")
    kagglehub = pytest.importorskip("kagglehub")
    keras_hub_preset(tmp_path / "kh")
    handles = []
    monkeypatch.setattr(
        kagglehub, "model_download", lambda handle: handles.append(handle) or str(tmp_path / "kh")
    )
    model = vp.VideoPrismBackbone.from_preset(
        "kaggle://keras/videoprism/keras/videoprism_lvt_public_v1_base/1"
    )
    assert handles == ["keras/videoprism/keras/videoprism_lvt_public_v1_base/1"]
    assert model.is_multimodal


@pytest.mark.backend
def test_architecture_only_from_a_directory_honours_new_shapes(tmp_path, golden_dir):
    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    model.save_to_preset(tmp_path / "preset")
    fresh = vp.VideoPrismBackbone.from_preset(tmp_path / "preset", load_weights=False, num_frames=8)
    assert fresh.video_encoder.temporal_positions.table.shape == (8, 32)
    saved = to_numpy(model.video_encoder.patch_proj.kernel)
    assert not np.allclose(to_numpy(fresh.video_encoder.patch_proj.kernel), saved)  # random weights


def test_architecture_only_from_hubs_fetches_only_the_config(tmp_path, monkeypatch, golden_dir):
    import huggingface_hub
    import kagglehub

    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", **GOLDEN_CAP)
    model.save_to_preset(tmp_path / "preset")
    fetched = []

    def download(repo, filename, purpose):
        fetched.append(filename)
        return tmp_path / "preset" / filename

    def kaggle_download(handle, path=None):
        fetched.append(path)
        return str(tmp_path / "preset" / path) if path else str(tmp_path / "preset")

    monkeypatch.setattr(
        huggingface_hub, "list_repo_files", lambda repo: os.listdir(tmp_path / "preset")
    )
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("weights")
    )
    monkeypatch.setattr(hub, "hf_download", download)
    monkeypatch.setattr(kagglehub, "model_download", kaggle_download)
    # The hub is "online" here (its calls are the fakes above): no offline short cut.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub, "reachable", lambda url: True)
    for handle in ("hf://someone/videoprism-preset", "kaggle://keras/videoprism/keras/x/1"):
        fresh = vp.VideoPrismBackbone.from_preset(handle, load_weights=False)
        config = {k: v for k, v in fresh.get_config().items() if k != "name"}
        assert config == {k: v for k, v in model.get_config().items() if k != "name"}
    assert fetched == ["config.json", "config.json"]


def test_tokenizer_download_leaves_nothing_partial(caches, monkeypatch, media_dir, tmp_path):
    import urllib.request

    class Interrupted:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, size=-1):
            raise KeyboardInterrupt("Ctrl-C midway")

    urlopen = urllib.request.urlopen
    monkeypatch.setattr(hub, "TOKENIZER_URL", "https://example.invalid/spm.model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Interrupted())
    monkeypatch.setattr(hub, "reachable", lambda url: True)  # the fake above is the network
    with pytest.raises(KeyboardInterrupt):
        hub.fetch_tokenizer()
    tokenizers = caches[0] / "tokenizers"
    assert not [p for p in tokenizers.iterdir() if not p.name.endswith(".lock")]
    # A download that is not a SentencePiece model (an HTML error page) is not cached.
    html = tmp_path / "error.html"
    html.write_text("<html>quota exceeded</html>")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(hub, "TOKENIZER_URL", html.as_uri())
    with pytest.raises(ValueError, match="SentencePiece"):
        hub.fetch_tokenizer()
    assert not [p for p in tokenizers.iterdir() if not p.name.endswith(".lock")]
    monkeypatch.setattr(hub, "TOKENIZER_URL", (media_dir / "test_spm.model").as_uri())
    assert hub.fetch_tokenizer().is_file()


def test_offline_never_tries_the_tokenizer_url(caches, monkeypatch):
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with pytest.raises(hub.PresetUnavailableError, match="HF_HUB_OFFLINE"):
        hub.fetch_tokenizer()
