"""Running `videoprism` commands in tests: in this process (`call`), or several one after the
other in one fresh interpreter (`run_all`), each result shaped like `subprocess.run`'s."""

import json
import subprocess
import sys
import types

from videoprism_keras.cli import main

# The child of `run_all`: each command's exit code, stdout and stderr (what Python writes
# there), as one JSON line at the end.
_CHILD = """
import contextlib, io, json, sys
from videoprism_keras.cli import main
done = []
for args in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    done.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(done))
"""


def _result(code, stdout, stderr):
    return types.SimpleNamespace(returncode=code, stdout=stdout, stderr=stderr)


def call(capsys, *args):
    """`main` in this process, for what answers before any model loads."""
    capsys.readouterr()  # what came before is not this call's
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return _result(code, out.out, out.err)


def run_all(env, *commands, ok=True):
    """Commands (lists of arguments) run in turn in one fresh interpreter; each loads its
    model again, but the interpreter and the libraries start once. With `ok`, every one
    must succeed."""
    payload = json.dumps([[str(a) for a in command] for command in commands])
    out = subprocess.run([sys.executable, "-c", _CHILD], input=payload, env=env,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    results = [_result(*done) for done in json.loads(out.stdout.splitlines()[-1])]
    if ok:
        for command, result in zip(commands, results, strict=True):
            assert result.returncode == 0, (command[:2], result.stderr[-2000:])
    return results
