"""`videoprism serve --workers N`: N processes answering on one port. The supervisor with
tiny apps, in this process (every worker answers, a killed one is started again, workers
that die with a stop are not, one that cannot start stops the server in one line, one that
keeps dying once serving is started again later each time and then stops it, one never
ready stops it, and the command says so in one line too); then the real command with 2
workers over one index, on a local folder and on the loopback S3 (tests/s3.py): both
workers answer, both serve a commit a writer process makes after the start, and a stop
(Ctrl-C to the whole process group, or the server SIGKILLed) ends every process within
seconds. System tests: no backend marker."""

import asyncio
import functools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import replica_apps
from cli_helpers import call
from videos import write_video

from videoprism_keras.constants import (
    SERVE_RESTART_WINDOW_SECONDS,
    SERVE_STOP_SECONDS,
    SERVE_WORKER_HEADER,
)
from videoprism_keras.serve import bind, replicas, url
from videoprism_keras.serve.replicas import ReplicaError, bind_shared, run_replicas

START_S = 240  # a worker loads JAX and the model: generous on a busy 2-core machine
STOP_S = 2 * SERVE_STOP_SECONDS  # every process gone (a worker stops in about 2 s)
ANSWER_S = 60  # a request, retried while the connection fails (a worker dying, restarting)
WRITER = """
import json, sys
import numpy as np
from videoprism_keras.apps.identity import VideoFile
from videoprism_keras.apps.index import store
from videoprism_keras.apps.index.table import ClipTable
uri, options, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
table = ClipTable(uri, storage_options=options, create=False)
files = [VideoFile(f"/late/late{i}.mp4", 100, 1) for i in range(n)]
vectors = store.normalise(np.random.default_rng(0).normal(size=(n, table.meta["dim"])))
table.commit(store.clip_table(files, [None] * n, [None] * n, vectors, [True] * n))
"""


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux's /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as f:
            found.update(int(c) for c in f.read().split())
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def until_gone(pid: int, seconds: float = STOP_S) -> None:
    deadline = time.monotonic() + seconds
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running after {seconds} s"
        time.sleep(0.05)


def answers(base: str, path: str, n: int = 8, params: dict | None = None) -> list:
    """`n` requests at once, each on a connection of its own (a kept-alive one stays with
    the worker that accepted it): [(worker, response)]. A request whose connection fails
    (reset by a worker that died with it accepted, or made in the instant it died) is sent
    again, as a client would."""

    def one(_):
        deadline = time.monotonic() + ANSWER_S
        while True:
            try:
                response = httpx.get(base + path, params=params, timeout=ANSWER_S,
                                     headers={"Connection": "close"})  # fmt: skip
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200, response.text
        return int(response.headers[SERVE_WORKER_HEADER]), response

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def until_every_worker(base: str, path: str, workers: int, check=lambda r: True,
                       params: dict | None = None, seconds: float = 60) -> dict:  # fmt: skip
    """{worker: its last answer} once every worker has given an answer that passes
    `check`; fails after `seconds`."""
    passed: dict = {}
    deadline = time.monotonic() + seconds
    while len(passed) < workers and time.monotonic() < deadline:
        for worker, response in answers(base, path, params=params):
            if check(response):
                passed[worker] = response
    assert sorted(passed) == list(range(1, workers + 1)), f"answered: {sorted(passed)}"
    return passed


# ------------------------------------------------------- the supervisor, in process
def supervised(build, workers: int, checks):
    """`run_replicas` in this (the main) thread; `checks(base, pids)` runs in another once
    every worker is ready, then this process's SIGTERM stops the server. Returns (what
    `checks` returned or raised, seconds from the SIGTERM to the return)."""
    outcome, stopped = {}, []

    def check_then_stop(pids):
        def run():
            try:
                outcome["value"] = checks(base, pids)
            except BaseException as err:  # said by the test, in the main thread
                outcome["error"] = err
            stopped.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=run, daemon=True).start()

    sock = bind_shared("127.0.0.1", 0)
    base = url(sock).rstrip("/")
    # A SIGTERM that comes late (after the server has ended) is caught here, not fatal.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        with sock:
            run_replicas(build, sock, workers, on_ready=check_then_stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value"), time.monotonic() - stopped[0]


def test_every_worker_answers_and_a_killed_one_is_started_again(capfd):
    def checks(base, pids):
        seen = until_every_worker(base, "/who", 2)
        assert {r.json()["pid"] for r in seen.values()} == set(pids)  # one process each
        # A burst of new connections is spread: not all accepted by whichever worker woke
        # first (each worker's own socket on the port takes its share).
        assert {worker for worker, _ in answers(base, "/who", n=32)} == {1, 2}
        first = seen[1].json()["pid"]
        os.kill(first, signal.SIGKILL)
        until_gone(first)  # its connections (accepted, or waiting on its socket) are reset
        # Once it is gone, worker 2 answers every new connection, until worker 1 comes back
        # as a new process.
        again = until_every_worker(base, "/who", 2, check=lambda r: r.json()["pid"] != first)
        pids = {r.json()["pid"] for r in again.values()}
        # A stop whose signal the workers get too (a Ctrl-C reaches the whole group): their
        # ends are the stop's, not deaths to restart.
        os.kill(os.getpid(), signal.SIGTERM)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return first, pids

    (killed, pids), stop_s = supervised(replica_apps.tiny_app, 2, checks)
    assert killed not in pids and len(pids) == 2
    assert stop_s < SERVE_STOP_SECONDS
    assert not any(alive(pid) for pid in (killed, *pids))
    err = capfd.readouterr().err
    restarts = [line for line in err.splitlines() if "starting it again" in line]
    assert restarts == [
        f"videoprism: worker 1 (pid {killed}) ended (signal SIGKILL): starting "
        f"it again in {replicas.SERVE_RESTART_DELAY_SECONDS:g} s"
    ], err


def test_a_sigterm_that_uvicorn_gives_back_while_its_loop_runs_ends_nothing_there():
    # uvicorn re-raises the SIGTERM it held (the parent's, after a Ctrl-C) from inside its
    # loop: the worker's handler must not raise there (a traceback); outside, it exits.
    async def inside_the_loop():
        replicas._exit()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        asyncio.run(inside_the_loop())
        with pytest.raises(SystemExit):
            replicas._exit()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # once
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_worker_that_cannot_start_stops_the_server_in_one_line(capfd):
    sock = bind("127.0.0.1", 0)
    began = time.monotonic()
    with sock, pytest.raises(ReplicaError, match=r"--workers: worker [12] ended \(exit code 1\) "
                             "before it was ready: stopping the server"):  # fmt: skip
        run_replicas(replica_apps.broken_app, sock, 2, on_ready=lambda pids: pytest.fail("ready"))
    assert time.monotonic() - began < 60
    err = capfd.readouterr().err
    assert "videoprism: worker 1: error: no model for worker 1" in err or "worker 2: error" in err
    assert "second line" not in err and "Traceback" not in err, err


def test_a_worker_that_keeps_dying_once_serving_is_restarted_ever_later_then_stops(
    tmp_path, monkeypatch, capfd
):
    # Once the server is announced, even a death before ready is restarted (a fresh start
    # may cure it), after a delay doubled at each death; past the cap, the server stops.
    monkeypatch.setattr(replicas, "SERVE_RESTARTS", 2)
    monkeypatch.setattr(replicas, "SERVE_RESTART_DELAY_SECONDS", 0.2)
    killed = []

    def kill(pids):  # once serving: the worker dies; every start after this one fails
        killed.extend(pids)
        os.kill(pids[0], signal.SIGKILL)

    build = functools.partial(replica_apps.once_app, str(tmp_path))
    window = f"{SERVE_RESTART_WINDOW_SECONDS:g}"
    with bind("127.0.0.1", 0) as sock, pytest.raises(ReplicaError) as raised:
        run_replicas(build, sock, 1, on_ready=kill)
    assert str(raised.value) == (f"--workers: worker 1 ended 3 times within {window} s (the "
                                 "last: exit code 1): stopping the server")  # fmt: skip
    err = capfd.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("videoprism:")]
    assert ours == [
        f"videoprism: worker 1 (pid {killed[0]}) ended (signal SIGKILL): starting it again in "
        "0.2 s",
        "videoprism: worker 1: error: worker 1 cannot start again",
        "videoprism: worker 1 ended (exit code 1) before it was ready: starting it again in 0.4 s",
        "videoprism: worker 1: error: worker 1 cannot start again",
    ], err
    assert "Traceback" not in err, err


def test_a_worker_never_ready_stops_the_server_in_one_line(monkeypatch):
    monkeypatch.setattr(replicas, "SERVE_START_SECONDS", 1.0)
    began = time.monotonic()
    with bind("127.0.0.1", 0) as sock, pytest.raises(ReplicaError) as raised:
        run_replicas(replica_apps.hung_app, sock, 1, on_ready=lambda pids: pytest.fail("ready"))
    assert str(raised.value) == ("--workers: worker 1 was not ready 1 s after its start: "
                                 "stopping the server")  # fmt: skip
    assert time.monotonic() - began < 1 + SERVE_STOP_SECONDS  # stopped by its SIGTERM


def test_workers_must_be_a_positive_number(capsys, tmp_path):
    for bad in ("0", "-2", "two"):
        result = call(capsys, "serve", tmp_path, "--workers", bad)
        assert result.returncode == 2 and "--workers" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="workers=0"):
        run_replicas(replica_apps.tiny_app, None, 0)


# ------------------------------------------- the real command, 2 workers, one index
@pytest.fixture(scope="module")
def model_flags(golden_dir, media_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames",
            "4", "--size", "16", "--tokenizer", media_dir / "test_spm.model"]  # fmt: skip


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "gen.mp4", frames=40, size=(32, 32))


def wait_or_kill_group(process: subprocess.Popen, seconds: float) -> None:
    """Waits for `process` (a session's leader); past `seconds`, SIGKILLs its whole group
    (the server and its workers: nothing outlives the test) and fails."""
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def start_server(args, env):
    """The real command in a session of its own (so that a Ctrl-C can reach its whole
    group, as a terminal's does); returns (process, base url, stderr lines as they come,
    the thread that reads them)."""
    command = [sys.executable, "-m", "videoprism_keras.cli", "serve", *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)  # fmt: skip
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(process.stderr), daemon=True)
    reader.start()
    ready, _, _ = select.select([process.stdout], [], [], START_S)
    line = process.stdout.readline() if ready else ""
    if "serving" not in line:
        os.killpg(process.pid, signal.SIGKILL)  # with any worker already started
        process.wait()
        pytest.fail(f"the server did not start: {line!r} {''.join(err)[-800:]}")
    assert "with 2 workers" in line, line
    return process, line.split(" on ")[-1].split()[0].rstrip("/"), err, reader


@pytest.mark.parametrize("store", ["local", "s3"])
def test_two_workers_serve_commits_made_after_start_and_stop_together(
    store, request, tmp_path, model_flags, video, capsys
):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIDEOPRISM_CACHE": str(tmp_path / "cache")}
    if store == "s3":
        server = request.getfixturevalue("s3_server")
        uri, options = f"s3://{server.bucket()}/ix", server.options()
        flags = server.flags()
    else:
        uri, options, flags = str(tmp_path / "ix"), {}, []
    indexed = call(capsys, "index", video, "-o", uri, *model_flags, *flags, "--clip-seconds",
                   "1", "--no-progress")  # fmt: skip
    assert indexed.returncode == 0, indexed.stderr
    process, base, err, reader = start_server([uri, "--port", "0", "--workers", "2", *flags,
                                       *model_flags[-2:]], env)  # fmt: skip
    workers = children(process.pid)
    try:
        before = until_every_worker(base, "/api/info", 2)
        size = before[1].json()["size"]
        assert size >= 3 and before[2].json()["size"] == size
        # A writer process commits three clips after the start: every worker serves them
        # (its held snapshot moves to the new version), in search and in the size.
        subprocess.run([sys.executable, "-c", WRITER, uri, json.dumps(options), "3"], env=env,
                       check=True, timeout=120)  # fmt: skip
        late = {"q": "late", "top_k": 50, "where": "path LIKE '/late/%'"}
        seen = until_every_worker(base, "/api/search", 2, params=late,
                                  check=lambda r: len(r.json()["hits"]) == 3)  # fmt: skip
        assert all(r.json()["index_size"] == size + 3 for r in seen.values())
    finally:
        # S3: Ctrl-C, as a terminal sends it, to every process of the group at once. Local:
        # the server SIGKILLed, with no chance to stop its workers: each sees its parent gone
        # and stops itself. (SIGTERM: the tests of the supervisor above.)
        began = time.monotonic()
        if store == "s3":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.kill()
        wait_or_kill_group(process, SERVE_STOP_SECONDS + 10)
    while any(alive(pid) for pid in workers) and time.monotonic() - began < STOP_S:
        time.sleep(0.1)
    assert len(workers) >= 2 and not any(alive(pid) for pid in workers)
    with pytest.raises(httpx.ConnectError):  # nothing answers on the port any more
        httpx.get(base + "/api/health", timeout=5)
    reader.join(10)  # its last lines (the stream ends with the last process holding it)
    assert not reader.is_alive()
    # Nothing but our own lines: no traceback, no library's start-up noise from any worker.
    assert all(line.startswith("videoprism:") for line in err), "".join(err)[-800:]
    if store == "s3":
        assert process.returncode == 0, "".join(err)[-800:]
        assert err[-1].strip() == "videoprism: stopped"
        # The workers stopped by the Ctrl-C they got too are not started again.
        assert not any("starting it again" in line for line in err), "".join(err)[-800:]


def test_a_worker_that_cannot_load_stops_the_command_in_one_line(tmp_path, model_flags, video,
                                                                capfd):  # fmt: skip
    from videoprism_keras.cli import main

    uri = tmp_path / "ix"
    assert main(["index", str(video), "-o", str(uri), *map(str, model_flags), "--clip-seconds",
                 "1", "--no-progress"]) == 0  # fmt: skip
    broken = tmp_path / "broken.model"
    broken.write_bytes(b"not a SentencePiece model")  # passes the command's checks, not a load
    capfd.readouterr()
    code = main(["serve", str(uri), "--port", "0", "--workers", "2", "--tokenizer", str(broken)])
    err = capfd.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and all(line.startswith("videoprism:") for line in
                                          err.splitlines()), err  # fmt: skip
    assert err.splitlines()[-1].startswith("videoprism: error: --workers: worker "), err
    assert "before it was ready: stopping the server" in err
    assert any(line.startswith("videoprism: worker ") and "not a SentencePiece model" in line
               for line in err.splitlines()), err  # fmt: skip
