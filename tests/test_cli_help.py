"""What `videoprism` tells before any work: every flag's help and default, the version, and
answers (help, version, usage errors, `info`) that load no Keras and no backend."""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import call

from videoprism_keras import cli, constants
from videoprism_keras.cli import COMMAND_MODULES
from videoprism_keras.cli.parser import build


def _actions(parser, where="videoprism"):
    """(where, parser, action) for every action of the parser and its sub-commands."""
    for action in parser._actions:
        yield where, parser, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{where} {name}")


def _name(action):
    return action.option_strings[-1] if action.option_strings else action.dest


def test_every_flag_has_help_that_states_its_default():
    seen = list(_actions(build(cli.__doc__, COMMAND_MODULES)))
    # The top level, each command, and each of `eval`'s tasks.
    commands = 1 + len(_commands()) + len(_tasks("eval"))
    assert len({where for where, _, _ in seen}) == commands, "walk missed commands"
    for where, parser, action in seen:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{where} {_name(action)} has no help text"
        default = action.default
        # A switch (no argument) is off unless given: nothing to state.
        if default in (None, argparse.SUPPRESS) or action.nargs == 0 or default == []:
            continue
        # What --help prints for this action, as argparse expands it.
        shown = parser._get_formatter()._expand_help(action)
        assert str(default) in shown, f"{where} {_name(action)}: help {shown!r} hides {default!r}"


def test_no_help_says_default_none():
    for where, parser, action in _actions(build(cli.__doc__, COMMAND_MODULES)):
        if action.help and action.help is not argparse.SUPPRESS:
            shown = parser._get_formatter()._expand_help(action)
            assert "default: None" not in shown and "default: False" not in shown, where


def test_the_top_level_help_shows_every_command_with_an_example():
    for command in _commands():
        example = re.search(rf"^ +videoprism {command}\b", cli.__doc__, re.MULTILINE)
        assert example, f"no example of `videoprism {command}`"


def _commands():
    parser = build("", COMMAND_MODULES)
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(subparsers.choices)


def _tasks(command):
    """The sub-commands of a command that has them (`eval retrieval`, …)."""
    parser = build("", COMMAND_MODULES)
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    command = subparsers.choices[command]
    (tasks,) = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
    return list(tasks.choices)


# A fresh interpreter runs `videoprism ARGS` as the console script does, then says which of
# the heavy libraries it loaded: none may be, before the arguments are checked.
_CHILD = """
import json, runpy, sys
sys.argv = ["videoprism", *json.loads(sys.argv[1])]
try:
    runpy.run_module("videoprism_keras.cli", run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as done:
    code = done.code
heavy = [m for m in ("keras", "jax", "tensorflow", "torch") if m in sys.modules]
print("\\nCHILD " + json.dumps([code, heavy]))
"""


def _fresh(*args, env=None):
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([str(a) for a in args])],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    code, heavy = json.loads(out.stdout.rsplit("CHILD ", 1)[1])
    return code, heavy, out


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["--help"], 0, "usage: videoprism"),
        (["--version"], 0, f"videoprism-keras {constants.VERSION}"),
        (["embed", "missing.mp4", "-o", "e.npz"], 2, "missing.mp4: no such file"),
        (["info"], 0, "extras installed"),
    ],
)
def test_help_version_usage_errors_and_info_load_no_keras_nor_backend(args, code, says, tmp_path):
    got, heavy, out = _fresh(*args, env={**os.environ, "VIDEOPRISM_CACHE": str(tmp_path)})
    assert (got, heavy) == (code, []), out.stderr[-2000:]
    assert says in out.stdout + out.stderr


def test_errors_that_look_at_files_come_before_keras(tmp_path):
    missing = tmp_path / "missing"
    checks = {
        ("embed", tmp_path / "x.mp4", "-o", tmp_path / "e.txt"): "-o",
        ("classify", missing / "x.mp4", "--labels", "a,b"): "no such file",
        ("export", "--format", "onnx", "-o", tmp_path / "model.pb"): "expected a .onnx file",
        ("train", missing, "-o", tmp_path / "head.keras"): "no such folder",
        ("train", tmp_path, "-o", tmp_path / "head.h5"): "expected a .keras file",
        ("finetune", missing / "pairs.csv", "-o", tmp_path / "run"): "no such file",
        ("search", missing, "--text", "a"): "not a video index",
        ("moments", missing / "x.mp4", "--video", tmp_path / "q.mp4"): "no such file",
        ("serve", missing): "not a video index",
    }
    for args, says in checks.items():
        code, heavy, out = _fresh(*args)
        assert code in (1, 2) and heavy == [], (args, out.stderr[-2000:])
        assert out.stderr.count("\n") == 1 and says in out.stderr, (args, out.stderr)


def test_version_is_the_package_s(capsys):
    out = call(capsys, "--version")
    assert out.returncode == 0 and out.stdout == f"videoprism-keras {constants.VERSION}\n"


def test_info_lists_extras_backends_devices_and_cache(tmp_path, monkeypatch, capsys):
    from videoprism_keras.cli import environment

    cache = tmp_path / "cache"
    (cache / "videoprism_public_v1_base").mkdir(parents=True)
    (cache / "videoprism_public_v1_base" / "config.json").write_text("{}")
    monkeypatch.setenv("VIDEOPRISM_CACHE", str(cache))
    installed = environment.version_of
    monkeypatch.setattr(environment, "version_of",
                        lambda name: None if name == "lancedb" else installed(name))  # fmt: skip
    out = json.loads(call(capsys, "info", "--json").stdout)
    assert out["videoprism_keras"] == constants.VERSION and out["python"].count(".") == 2
    assert out["extras"]["apps"] == {"installed": False, "missing": ["lancedb"]}
    assert out["extras"]["serve"]["missing"] == ["lancedb"]  # through [apps], which it holds
    assert "av" in environment.declared_extras()["apps"]  # through [video]
    assert set(out["backends"]) == set(constants.BACKENDS) and out["backends"]["jax"]
    assert isinstance(out["accelerators"], list)
    assert out["cached"] == ["videoprism_public_v1_base"]
    assert out["cache_contents"][0]["bytes"] == 2
    text = call(capsys, "info").stdout
    assert "missing apps: lancedb" in text and 'pip install "videoprism-keras[cli]"' in text
    assert "* videoprism_public_v1_base" in text


@pytest.mark.parametrize("args, code", [(["info", "--json"], 141), (["info"], 141),
                                        (["--help"], 0)])  # fmt: skip
def test_a_reader_gone_ends_quietly(args, code):
    # The reading end closed before anything is written: as `| head` that has exited.
    read, write = os.pipe()
    child = subprocess.Popen([sys.executable, "-m", "videoprism_keras.cli", *args], stdout=write,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    os.close(write)
    os.close(read)
    _, err = child.communicate(timeout=120)
    # 141 (128 + SIGPIPE) as other tools in a pipe; argparse drops a failed --help itself.
    assert child.returncode == code and err == "", err


def test_load_time_lines_are_held_wherever_the_library_is_imported(tmp_path, capfd, monkeypatch):
    from videoprism_keras.native_logs import held_while_importing

    # Native libraries write to file descriptor 2 as they load, past Python's sys.stderr.
    (tmp_path / "noisy_library.py").write_text("import os\nos.write(2, b'load-time noise\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with held_while_importing("noisy_library", "never_imported"):
        # Looking for it first (as the extras check does) does not use up the hold.
        assert importlib.util.find_spec("noisy_library") is not None
        import noisy_library  # noqa: F401

        os.write(2, b"the command's own line\n")
    assert capfd.readouterr().err == "the command's own line\n"
    assert not any(type(f).__name__ == "_HeldImport" for f in sys.meta_path)  # gone after
    monkeypatch.delitem(sys.modules, "noisy_library")


def test_info_reads_the_extras_of_a_source_tree_when_not_installed(monkeypatch):
    from videoprism_keras.cli import environment

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as the fallback itself

    def not_installed(name):
        raise environment.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(environment.importlib.metadata, "metadata", not_installed)
    from_source = environment.declared_extras()
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["optional-dependencies"]
    assert set(from_source) == set(declared) and "av" in from_source["apps"]  # via [video]
