"""Under Ray, stdout holds the command's result only: what Ray's driver prints of the
cluster ("(raylet) A worker died …") and of the workers goes to stderr."""

import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from videoprism_keras.apps.ray_pipeline import driver_messages_on_stderr  # noqa: E402

DIED = "A worker died or was killed while executing a task by an unexpected system error."


def _report(line):
    """What Ray's error listener does with a message the raylet publishes."""
    data = {"lines": [line], "pid": "raylet", "is_err": False}
    ray._private.worker.print_to_stdstream(data, ignore_prefix=False)


def test_raylet_messages_go_to_stderr_while_the_session_lasts(capsys):
    original = ray._private.worker.print_to_stdstream
    with driver_messages_on_stderr(ray):
        _report(DIED)
    out = capsys.readouterr()
    assert out.out == "" and DIED in out.err
    assert ray._private.worker.print_to_stdstream is original  # Ray's own again after
    _report("after the session")
    assert "after the session" in capsys.readouterr().out


def test_a_ray_without_the_printer_is_left_alone():
    class Elsewhere:  # a Ray release that moved the function
        pass

    with driver_messages_on_stderr(Elsewhere()):
        pass


# A driver whose task's worker dies: Ray reports it from a thread, some time later; the
# child waits for the report (on its stderr) before it prints its result.
_CHILD = """
import io, os, sys, time
from videoprism_keras.apps.ray_pipeline import ray_session
err, sys.stderr = sys.stderr, io.StringIO()
with ray_session(quiet=True) as ray:
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)
    try:
        ray.get(die.remote())
    except ray.exceptions.WorkerCrashedError:
        pass
    deadline = time.monotonic() + 60
    while "A worker died" not in sys.stderr.getvalue() and time.monotonic() < deadline:
        time.sleep(0.1)
err.write(sys.stderr.getvalue())
print('{"result": 1}')
"""


def test_a_dead_worker_is_reported_on_stderr_not_before_the_result():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == '{"result": 1}\n'
    assert "A worker died" in out.stderr
