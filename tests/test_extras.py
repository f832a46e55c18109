"""The extras: pyproject.toml installs what `extras.PACKAGES` says, every command checks what
it needs before any work and names the extra to install, and, in a real environment with
`[jax]` alone (the Makefile's .venv-jax), each command fails at once and writes nothing."""

import os
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from cli_helpers import call

from videoprism_keras import extras
from videoprism_keras.apps.embed_writer import EmbeddingWriter
from videoprism_keras.apps.index import VideoIndex
from videoprism_keras.cli import COMMAND_MODULES, parser, requirements

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
JAX_ONLY_ENV = "VIDEOPRISM_JAX_ONLY_PYTHON"  # the Makefile's .venv-jax/bin/python
SMALL = "lvt_small.ckpt.npz"  # a local preset: nothing to download


def _packages(extra: str) -> set[str]:
    """The pip names an extra installs, its own extras' included."""
    names = set()
    for requirement in EXTRAS[extra]:
        if requirement.startswith("videoprism-keras["):
            for inner in requirement.split("[")[1].rstrip("]").split(","):
                names |= _packages(inner)
        else:
            names.add(re.split(r"[<>=~!;]", requirement)[0].strip())  # no version, no marker
    return names


@pytest.fixture()
def without(monkeypatch):
    """`without("matplotlib", ...)`: those packages read as not installed."""

    def hide(*packages):
        real = extras.installed
        monkeypatch.setattr(extras, "installed", lambda p: p not in packages and real(p))

    return hide


# ------------------------------------------------------------------ the table and pyproject
def test_each_package_is_installed_by_the_extra_its_message_names():
    for package, (_, extra) in extras.PACKAGES.items():
        assert package in _packages(extra), (package, extra)
        if extra in extras.CLI_PARTS:  # the CLI asks for `cli`: it must hold it too
            assert package in _packages("cli"), package


def test_cli_extra_holds_every_command_without_an_optional_engine():
    cli = _packages("cli")
    for command, packages in requirements.COMMANDS.items():
        if command != "serve":
            assert set(packages) <= cli, command
    assert {"jax", "matplotlib", "pyarrow", "lancedb", "av", "sentencepiece"} <= cli
    for engine in ("serve", "ray"):  # they bring the CLI, and so a backend
        assert cli <= _packages(engine), engine
    assert set(requirements.SERVE) <= _packages("serve")
    assert _packages("apps") <= cli and "jax" not in _packages("apps")  # kept as it was


def test_every_command_has_its_needs_in_the_table():
    built = parser.build("", COMMAND_MODULES)
    commands = set(built._subparsers._group_actions[0].choices)
    assert commands == set(requirements.COMMANDS)


def test_install_line_names_the_fewest_extras():
    line = extras.install_line(["fastapi", "lancedb", "av"], cli=True)
    assert '"videoprism-keras[serve]"' in line and '".[serve]"' in line  # serve holds cli
    assert "[cli,torch]" in extras.install_line(["torch", "av"], cli=True)
    assert "[video,apps]" in extras.install_line(["av", "lancedb"])  # the library's own


# ------------------------------------------------------------------ in this process
def test_missing_plot_package_fails_classify_before_anything(tmp_path, capsys, without):
    without("matplotlib")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read")
    result = call(capsys, "classify", clip, "--labels", "a,b", "--preset", tmp_path,
                  "--plot", tmp_path / "plot.png")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("videoprism: error: classify --plot needs matplotlib, which")
    assert '"videoprism-keras[cli]"' in result.stderr and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(
    ("argv", "missing", "said"),
    [
        (["embed", "c.mp4", "-o", "x.npz", "--ray"], "ray[data]", "embed --ray needs ray[data]"),
        (["serve", "idx"], "fastapi", "serve needs fastapi"),
        (["--backend", "torch", "info"], "torch", None),  # info needs no backend
        (["export", "--format", "onnx", "-o", "m.onnx", "--backend", "jax"], "jax2onnx",
         "export --format onnx needs jax2onnx"),
        (["export", "--format", "onnx", "-o", "m.onnx", "--backend", "tensorflow"], "jax2onnx",
         "export --format onnx needs jax2onnx"),  # routed through JAX (onnx_export)
        (["--backend", "torch", "train", "d", "-o", "m.keras"], "torch",
         "train --backend torch needs torch"),
        (["search", "idx", "--text", "x"], "sentencepiece", "search --text needs sentencepiece"),
    ],
)  # fmt: skip
def test_each_flag_names_what_it_needs(argv, missing, said, without):
    without(missing)
    args = parser.build("", COMMAND_MODULES).parse_args(argv)
    if said is None:
        requirements.check(args)
        return
    with pytest.raises(extras.MissingExtra) as caught:
        requirements.check(args)
    assert str(caught.value).startswith(said)
    extra = extras.PACKAGES[missing][1]
    assert f'"videoprism-keras[{"cli" if extra in extras.CLI_PARTS else extra}]"' in str(
        caught.value
    )


def test_library_entry_points_name_the_extra_before_writing(tmp_path, without):
    without("lancedb", "pyarrow")
    with pytest.raises(ImportError, match=r"VideoIndex needs lancedb and pyarrow.*\[apps\]"):
        VideoIndex(tmp_path / "index")
    with pytest.raises(ImportError, match=r"needs pyarrow.*\[apps\]"):
        EmbeddingWriter(tmp_path / "out.parquet", {})
    assert list(tmp_path.iterdir()) == []  # no index folder, no .partial


def test_library_export_names_the_export_extra_not_keras_pip_line(tmp_path, without):
    import keras

    from videoprism_keras.export import export

    needed = extras.EXPORTERS[("onnx", keras.backend.backend())]
    without(*needed)
    with pytest.raises(ImportError, match=r"export\(format='onnx'\).*\[export\]"):
        export(None, tmp_path / "m.onnx", format="onnx")  # before the model is looked at
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a real [jax]-only install
@pytest.fixture(scope="module")
def jax_only() -> Path:
    """The `videoprism` script of the Makefile's [jax]-only environment. `make test-jax`
    always sets the variable; a plain pytest run without it skips these tests."""
    python = os.environ.get(JAX_ONLY_ENV)
    if not python:
        pytest.skip(f"{JAX_ONLY_ENV} is not set: `make test-jax` builds .venv-jax and sets it")
    if not Path(python).is_file():
        pytest.fail(f"{JAX_ONLY_ENV}={python} does not exist: run `make .venv-jax/.installed`")
    probe = "import importlib.util as u, videoprism_keras as v; print(v.__file__); "
    probe += "print([m for m in ('lancedb', 'av', 'matplotlib', 'torch') if u.find_spec(m)])"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=_env())
    where, found = out.stdout.splitlines()
    assert Path(where).resolve() == ROOT / "src" / "videoprism_keras" / "__init__.py", (
        f"{python} runs {where}, not this checkout: rebuild it (rm -r .venv-jax; make test)"
    )
    assert found == "[]", f"{python} is not a [jax]-only environment: it has {found}"
    return Path(python).parent / "videoprism"


def _env() -> dict:
    """No backend chosen (the CLI's default applies), no sources from the test's own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["HF_HUB_OFFLINE"] = "1"
    return env


JAX_ONLY_COMMANDS = [
    (["embed", "clip.mp4", "-o", "out.parquet"], "embed -o out.parquet needs av, pillow, pyarrow",
     "cli"),
    (["index", "clip.mp4", "-o", "my_index"], "index needs lancedb, pyarrow, av and pillow", "cli"),
    (["classify", "clip.mp4", "--labels", "a,b", "--preset", SMALL, "--plot", "p.png"],
     "classify --plot needs av, pillow, matplotlib and sentencepiece", "cli"),
    (["search", "my_index", "--text", "drums", "--plot", "hits.png"],
     "search --plot --text needs lancedb", "cli"),
    (["train", "data", "-o", "head.keras"], "train needs av", "cli"),
    (["finetune", "pairs.parquet", "-o", "run"], "finetune needs av", "cli"),
    (["serve", "my_index"], "serve needs fastapi, uvicorn, python-multipart", "serve"),
    (["embed", "clip.mp4", "-o", "out.npz", "--ray"], "embed --ray needs", "ray"),
    (["export", "--format", "onnx", "-o", "m.onnx", "--preset", SMALL],
     "export --format onnx needs onnx and jax2onnx", "export"),
    (["--backend", "torch", "export", "--format", "onnx", "-o", "m.onnx", "--preset", SMALL],
     "export --backend torch --format onnx needs torch, onnx and onnxscript", "torch,export"),
]  # fmt: skip


def test_each_command_in_a_jax_only_install_names_its_extra_and_writes_nothing(jax_only, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"never read")
    (tmp_path / SMALL).write_bytes(b"never read")
    inputs = sorted(tmp_path.iterdir())
    slowest = 0.0
    for argv, said, extra in JAX_ONLY_COMMANDS:
        start = time.perf_counter()
        out = subprocess.run([jax_only, *argv], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        slowest = max(slowest, time.perf_counter() - start)
        assert out.returncode == 1, (argv, out.stderr)
        assert out.stderr.startswith(f"videoprism: error: {said}"), (argv, out.stderr)
        assert f'pip install "videoprism-keras[{extra}]"' in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1 and out.stdout == "", (argv, out.stderr)
        assert sorted(tmp_path.iterdir()) == inputs, argv  # no -o, .partial or write.lock
    # They fail before Keras loads: a fraction of a second each on an idle machine.
    assert slowest < 5, f"the slowest took {slowest:.1f} s"


def test_only_a_built_in_name_or_a_hub_handle_asks_for_a_downloader():
    from videoprism_keras.cli import COMMAND_MODULES, __doc__, requirements
    from videoprism_keras.cli.parser import build

    parser = build(__doc__, COMMAND_MODULES)

    def downloader(*argv):
        return requirements._downloader(parser.parse_args(argv))

    assert downloader("classify", "v.mp4", "--head", "head.keras") is None  # holds its model
    assert downloader("embed", "v.mp4", "-o", "e.npz") == "huggingface_hub"  # the default
    assert downloader("embed", "v.mp4", "-o", "e.npz", "--preset", "videoprism_lvt_bse") is None
    assert downloader("embed", "v.mp4", "-o", "e.npz", "--preset", "/nope/m.npz") is None
    assert downloader("embed", "v.mp4", "-o", "e.npz", "--preset", "modelscope://a/b") == (
        "modelscope")  # fmt: skip
