"""Hostile input: each wrong result or unclear error a trial found, now a clear answer.

Model-level checks run on every backend. The CLI's checks that answer before a model
loads run in this process, through `main`; the others run the command in a subprocess.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from cli_helpers import call, run_all
from helpers import TINY, TINY_LVT, random_text, random_video, to_numpy
from videos import write_video

import videoprism_keras as vp
from videoprism_keras import hub
from videoprism_keras.classifier import VideoPrismVideoClassifier
from videoprism_keras.runtime import Encoder


@pytest.fixture(scope="module")
def tiny_lvt():
    return vp.VideoPrismBackbone(**TINY_LVT)


# ------------------------------------------------------------------ pixels and tokens
@pytest.mark.backend
def test_uint8_pixels_are_scaled_like_load_video(tiny_lvt):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (1, 4, 16, 16, 3), dtype=np.uint8)
    as_float = tiny_lvt.encode_video(frames.astype(np.float32) / 255)["vision_embeddings"]
    for pixels in (frames, keras.ops.convert_to_tensor(frames)):
        got = tiny_lvt.encode_video(pixels)["vision_embeddings"]
        np.testing.assert_allclose(to_numpy(got), to_numpy(as_float), atol=1e-6)
    np.testing.assert_allclose(
        Encoder(tiny_lvt).video(frames)["vision_embeddings"], to_numpy(as_float), atol=1e-5
    )


@pytest.mark.backend
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x * 255, r"in \[0, 1\].*look like 0–255"),
        (lambda x: (x - 0.5) / 0.25, r"in \[0, 1\].*standardised"),
        (lambda x: np.where(x > 0.9, np.nan, x), "NaN or infinite"),
        (lambda x: x.astype(np.int16), "dtype int16"),
        (lambda x: x[:, :0], "no frames"),
    ],
)
def test_bad_pixel_values_are_refused(tiny_lvt, change, message):
    pixels = change(random_video(batch=1))
    with pytest.raises(ValueError, match=message):
        tiny_lvt.encode_video(pixels)
    if pixels.shape[1]:  # the runtime path (the apps, the CLI) checks the same way
        with pytest.raises(ValueError, match=message):
            Encoder(tiny_lvt).video(pixels)


@pytest.mark.backend
def test_token_ids_past_the_vocabulary_are_refused(tiny_lvt):
    ids, mask = random_text(batch=2)
    ids = np.array(ids)
    ids[0, 0] = TINY_LVT["vocabulary_size"]
    for encode in (tiny_lvt.encode_text, Encoder(tiny_lvt).text):
        with pytest.raises(ValueError, match=r"token_ids must be in \[0, 50\).*tokenizer"):
            encode(ids, mask)


# ------------------------------------------------------------------ offline
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once we return: connections are refused


def test_an_unreachable_hub_is_reported_at_once_without_retries(caches, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    # At once: one probe of the endpoint, and no download (which retries for half a minute).
    probes, downloads = [], []
    probe = hub.reachable
    monkeypatch.setattr(hub, "reachable", lambda url: probes.append(url) or probe(url))
    cached_only = huggingface_hub.hf_hub_download

    def download(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            downloads.append(kwargs)
        return cached_only(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(hub.PresetUnavailableError) as info:
        vp.VideoPrismBackbone.from_preset("videoprism_public_v1_base")
    assert probes == [hf_constants.ENDPOINT] and downloads == []
    assert "cannot be reached" in str(info.value)
    assert "from_preset('/path/to/flax_base_f16r288_repeated.npz')" in str(info.value)
    assert "--preset /path/to/flax_base_f16r288_repeated.npz" in info.value.cli_message


def test_reachable_is_true_for_a_listening_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub.reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
    assert not hub.reachable(f"http://127.0.0.1:{_closed_port()}")


# ------------------------------------------------------------------ the trained head
@pytest.mark.backend
def test_a_classifier_keeps_its_labels_and_loads_after_a_plain_import(tmp_path):
    model = VideoPrismVideoClassifier(vp.VideoPrismBackbone(**TINY), 3, labels=["a", "b", "c"])
    model.save(tmp_path / "head.keras")
    code = (
        "import videoprism_keras, keras, numpy as np\n"
        f"m = keras.models.load_model({str(tmp_path / 'head.keras')!r})\n"
        "print(type(m).__name__, m.labels)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=os.environ)  # fmt: skip
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.split("\n")[-2] == "VideoPrismVideoClassifier ['a', 'b', 'c']"
    top = model.predict_labels(random_video(batch=2), top_k=2, verbose=0)
    assert len(top) == 2 and all(len(row) == 2 for row in top)
    assert {label for row in top for label, _ in row} <= {"a", "b", "c"}
    with pytest.raises(ValueError, match="labels must be a list of 3 class names"):
        VideoPrismVideoClassifier(vp.VideoPrismBackbone(**TINY), 3, labels=["a", "b"])


# ------------------------------------------------------------------ the command line
def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "videoprism_keras.cli", *map(str, args)],
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_args(golden_dir):
    model = ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames", "4"]
    return [*model, "--size", "16", "--no-progress"]


@pytest.mark.parametrize("cap", ["0", "-1", "nan"])
def test_a_soft_cap_that_is_not_positive_is_a_usage_error(tmp_path, cap, capsys):
    out = call(capsys, "embed", tmp_path / "x.mp4", "-o", tmp_path / "e.npz", "--soft-cap", cap)
    assert out.returncode == 2 and "--soft-cap" in out.stderr and cap in out.stderr


def test_tensorflow_prints_nothing_before_our_output():
    out = cli("info", "--backend", "tensorflow", "--json")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert json.loads(out.stdout)["backend"] == "tensorflow"


def test_offline_cli_names_the_flag_not_python(caches, tmp_path, capsys):
    clip = write_video(tmp_path / "c.mp4", frames=8, size=(16, 16))
    out = call(capsys, "embed", clip, "-o", tmp_path / "e.npz", "--preset",
               "videoprism_public_v1_base")  # fmt: skip
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "--preset /path/to/flax_base_f16r288_repeated.npz" in out.stderr
    assert "from_preset" not in out.stderr


def test_the_first_offline_message_names_every_file_the_command_needs(caches, golden_dir,
                                                                      tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    clip = write_video(tmp_path / "c.mp4", frames=8, size=(16, 16))
    npz = "--preset /path/to/flax_lvt_base_f16r288_repeated.npz"
    # Text needs the LvT vocabulary too, which the official .npz does not hold.
    out = call(capsys, "classify", clip, "--labels", "a,b")
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert npz in out.stderr and "--tokenizer /path/to/sentencepiece.model" in out.stderr
    out = call(capsys, "embed", clip, "-o", tmp_path / "e.npz", "--preset",
               "videoprism_lvt_public_v1_base")  # fmt: skip
    assert npz in out.stderr and "--tokenizer" not in out.stderr  # no text: no tokenizer
    vocabulary = hub.cached_tokenizer()  # fetched once before: that file is named
    vocabulary.parent.mkdir(parents=True)
    vocabulary.write_bytes(b"spm")
    out = call(capsys, "classify", clip, "--labels", "a,b")
    assert npz in out.stderr and f"--tokenizer {vocabulary}" in out.stderr
    # Given the .npz alone, the tokenizer is asked for before the model loads.
    loaded = []
    monkeypatch.setattr(vp.VideoPrismBackbone, "from_preset", lambda *a, **k: loaded.append(a))
    out = call(capsys, "classify", clip, "--labels", "a,b", "--preset",
               golden_dir / "lvt_small.ckpt.npz")  # fmt: skip
    assert out.returncode == 2 and f"--tokenizer {vocabulary}" in out.stderr and not loaded
    lvt = ["--preset", golden_dir / "lvt_small.ckpt.npz"]
    out = call(capsys, "classify", clip, "--labels", "a,b", *lvt, "--tokenizer", "none.model")
    assert out.returncode == 2 and "--tokenizer" in out.stderr and "none.model" in out.stderr
    assert not loaded


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    data = tmp_path_factory.mktemp("labelled")
    for label in ("cats", "dogs"):
        (data / label).mkdir()
        for i in range(2):
            write_video(data / label / f"{i}.mp4", frames=8 + 4 * i, size=(16, 16))
    return data


def test_train_refuses_bad_outputs_before_any_work(labelled, tiny_args, tmp_path, monkeypatch,
                                                   capsys):  # fmt: skip
    loaded = []  # refused, not trained: no model is even loaded
    monkeypatch.setattr(vp.VideoPrismBackbone, "from_preset", lambda *a, **k: loaded.append(a))
    for output, message in [
        (tmp_path / "head.h5", "expected a .keras file"),
        (tmp_path / "no" / "such" / "head.keras", "does not exist"),
        (tmp_path, "expected a .keras file"),
    ]:
        out = call(capsys, "train", labelled, "-o", output, *tiny_args)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1
    assert loaded == []


def test_a_label_without_readable_clips_is_an_error(labelled, tiny_args, tmp_path):
    data = tmp_path / "data"
    (data / "broken").mkdir(parents=True)
    (data / "broken" / "x.mp4").write_bytes(b"not a video")
    os.symlink(labelled / "cats", data / "cats")
    out = cli("train", data, "-o", tmp_path / "head.keras", *tiny_args)
    assert out.returncode == 1 and "no readable clip for label(s) broken" in out.stderr
    assert "skipped" in out.stderr and "1 input(s) failed, 2 item(s) embedded" in out.stderr
    assert not (tmp_path / "head.keras").exists()


def test_classify_with_a_trained_head_uses_its_labels(labelled, tiny_args, tmp_path, capsys):
    head = tmp_path / "head.keras"
    out = cli("train", labelled, "-o", head, "--epochs", "2", *tiny_args)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stderr == ""  # saving loads TensorFlow, even on JAX: its log lines are held back
    clip = labelled / "cats" / "0.mp4"
    given, recorded = run_all(
        os.environ,
        ["classify", clip, "--head", head, "--num-frames", "4", "--size", "16", "--json",
         "--no-progress"],
        # Without the flags: the sampling the head was trained with, not the model's default.
        ["classify", clip, "--head", head, "--json", "--no-progress"],
    )  # fmt: skip
    top = json.loads(given.stdout)[0]["top"]
    assert {hit["label"] for hit in top} == {"cats", "dogs"}
    assert abs(sum(hit["probability"] for hit in top) - 1) < 1e-5
    assert json.loads(recorded.stdout) == json.loads(given.stdout)
    for flags, message in [
        (["--size", "32"], "trained with --size 16, not 32"),
        (["--num-frames", "2"], "trained with --num-frames 4, not 2"),
        (["--soft-cap", "7"], "trained with --soft-cap 5, not --soft-cap 7"),
    ]:
        out = call(capsys, "classify", clip, "--head", head, *flags)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1
    out = call(capsys, "classify", clip, "--head", tmp_path / "missing.keras")
    assert out.returncode == 2 and "--head" in out.stderr


def test_strict_makes_any_failure_an_error(labelled, tiny_args, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage")
    files = [labelled / "cats" / "0.mp4", bad]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out, strict = run_all(env, ["embed", *files, "-o", tmp_path / "e.npz", *tiny_args],
                          ["embed", *files, "-o", tmp_path / "e.npz", "--strict", *tiny_args],
                          ok=False)  # fmt: skip
    assert out.returncode == 0 and "1 input(s) failed, 1 item(s) embedded" in out.stderr
    out = strict
    assert out.returncode == 1 and "--strict" in out.stderr


@pytest.mark.backend
def test_h5_files_are_refused_before_writing(tmp_path):
    backbone = vp.VideoPrismBackbone(**TINY)
    for model in (backbone, VideoPrismVideoClassifier(backbone, 2)):
        with pytest.raises(ValueError, match=r"\.keras files.*filepath='.*m\.h5'"):
            model.save(tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_search_refuses_an_empty_text_and_a_folder_query(tmp_path, capsys):
    out = call(capsys, "search", tmp_path / "index", "--text", "  ")
    assert out.returncode == 2 and "--text is empty" in out.stderr
    out = call(capsys, "search", tmp_path / "index", "--video", tmp_path)
    assert out.returncode == 2 and "is a folder" in out.stderr
    out = call(capsys, "search", tmp_path / "index", "--text", "a cat", "--plot",
               tmp_path / "hits.pdf")  # fmt: skip
    assert out.returncode == 2 and "--plot" in out.stderr and ".png" in out.stderr


def test_links_that_loop_or_dangle_are_named_as_such(tmp_path):
    from videoprism_keras.apps import find_videos

    os.symlink(tmp_path / "loop", tmp_path / "loop")
    os.symlink(tmp_path / "gone.mp4", tmp_path / "dangling.mp4")
    with pytest.raises(FileNotFoundError, match="a symbolic link loop"):
        find_videos([tmp_path / "loop"])
    with pytest.raises(FileNotFoundError, match="a dangling symbolic link"):
        find_videos([tmp_path / "dangling.mp4"])


def test_a_folder_of_frames_is_one_video_on_the_command_line(tiny_args, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(frames / f"{i}.png")
    out = cli("embed", frames, "-o", tmp_path / "e.npz", "--json", *tiny_args)
    assert out.returncode == 0, out.stderr[-1500:]
    assert json.loads(out.stdout)["shape"][0] == 1


def test_embed_reports_each_failure_once_and_all_failing_in_one_short_line(tiny_args, tmp_path,
                                                                           capsys):  # fmt: skip
    bad = [tmp_path / f"bad{i}.mp4" for i in range(3)]
    for path in bad:
        path.write_bytes(b"garbage")
    out = cli("embed", *bad, "-o", tmp_path / "e.npz", *tiny_args)
    assert out.returncode == 1
    assert all(out.stderr.count(str(path)) == 1 for path in bad), out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "no video could be embedded" in last and "(and 2 more)" in last and len(last) < 400
    out = call(capsys, "embed", bad[0], "-o", tmp_path / "no" / "dir" / "e.npz", *tiny_args)
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = call(capsys, "embed", bad[0], "-o", tmp_path / "e.csv", *tiny_args)
    assert out.returncode == 2 and "expected a .npz or .npy or .parquet file" in out.stderr
