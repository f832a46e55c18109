"""Readers of an index on object storage, against a real S3 API on loopback (moto's
server, tests/s3.py): how stale a long-lived reader may be (`refresh_seconds`), `videoprism
serve` on an `s3://` index answering while another process commits (the new clips are
found within the bound), a missing bucket and a store that stops answering under a served
index, and `index --ray` into `s3://` (`embed -o s3://…`: tests/test_object_store_embed.py)."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import s3
from cli_helpers import call, run_all

from videoprism_keras.constants import INDEX_REFRESH_SECONDS

WORKER = Path(__file__).with_name("s3_commit_worker.py")
REFRESH_S = 1.0  # the served index's staleness bound in the serving test
# Past the bound, what a new clip's first sighting may still take: the query that sees it
# (a text embedding and a search on 2 shared cores) and the poll's period.
SIGHTING_MARGIN_S = 4.0
SERVER_START_S = 120


@pytest.fixture(scope="module")
def indexed(s3_server, env, lvt, videos):
    """An s3:// index of the videos, as `videoprism index` writes it (no Ray)."""
    model, tok = lvt
    uri = f"s3://{s3_server.bucket()}/ix"
    (added,) = run_all(env, ["index", videos, "-o", uri, "--clip-seconds", "1", "--json",
                             *s3_server.flags(), *model, *tok])  # fmt: skip
    assert json.loads(added.stdout)["size"] == 3 + 4 + 5  # 3, 4 and 5 s videos in 1 s windows
    return uri


def _rows(n, start=0, dim=8):
    from videoprism_keras.apps.identity import VideoFile
    from videoprism_keras.apps.index import store

    files = [VideoFile(f"/videos/v{i}.mp4", 100, 1) for i in range(start, start + n)]
    vectors = store.normalise(np.random.default_rng(start).normal(size=(n, dim)))
    return store.clip_table(files, [None] * n, [None] * n, vectors, [True] * n)


class Clock:
    """`time.monotonic` as the table module reads it, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_reader_sees_others_commits_within_refresh_seconds_its_own_at_once(
    s3_server, monkeypatch
):
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.apps.embedding import item_key
    from videoprism_keras.apps.identity import VideoFile
    from videoprism_keras.apps.index import table as table_module

    clock = Clock()
    monkeypatch.setattr(table_module, "_clock", clock)  # this module's clock alone
    uri, options = f"s3://{s3_server.bucket()}/ix", s3_server.options()
    VideoIndex(uri, storage_options=options).commit(_rows(2))
    reader = VideoIndex.load(uri, storage_options=options)  # the object store's default bound
    assert reader.refresh_seconds == INDEX_REFRESH_SECONDS and len(reader) == 2
    VideoIndex.load(uri, storage_options=options).commit(_rows(1, start=2))  # another writer
    clock.now += INDEX_REFRESH_SECONDS - 0.1
    assert len(reader) == 2  # within the bound: the version looked at just under it ago
    clock.now += 0.1
    assert len(reader) == 3  # at the bound: looked again
    query = _rows(1, start=2)["vector"].to_numpy(zero_copy_only=False)[0]
    assert reader.search(query, top_k=1)[0][0].path == "/videos/v2.mp4"
    reader.commit(_rows(1, start=3))  # its own commit: read at once, whatever the bound
    assert len(reader) == 4 and reader.search(query, top_k=9)[0][-1].score < 1
    # What a writer skips is looked up now: a file another writer has just committed is
    # not embedded again.
    VideoIndex.load(uri, storage_options=options).commit(_rows(1, start=4))
    assert len(reader) == 4
    file = VideoFile("/videos/v4.mp4", 100, 1)
    assert reader.held([file]) == {file.file_id: ({item_key(file.path, None, None)}, True)}


def test_refresh_defaults_follow_the_store_and_bad_values_name_the_argument(s3_server, tmp_path):
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.constants import INDEX_REFRESH_SECONDS, INDEX_REFRESH_SECONDS_LOCAL

    uri, options = f"s3://{s3_server.bucket()}/ix", s3_server.options()
    VideoIndex(uri, storage_options=options).commit(_rows(1))
    assert VideoIndex.load(uri, storage_options=options).refresh_seconds == INDEX_REFRESH_SECONDS
    local = VideoIndex(tmp_path / "ix")
    assert local.refresh_seconds == INDEX_REFRESH_SECONDS_LOCAL == 0
    local.commit(_rows(1))
    # A second handle for another thread keeps the setting.
    assert VideoIndex(tmp_path / "ix", refresh_seconds=5).reader().refresh_seconds == 5.0
    for bad in (-1, float("nan"), float("inf"), "2", True):
        with pytest.raises(ValueError, match=r"refresh_seconds must be .* Received: "):
            VideoIndex(tmp_path / "ix", refresh_seconds=bad)


def test_refresh_seconds_flag_is_checked_before_anything_loads(capsys):
    for value in ("-1", "nan", "soon"):
        out = call(capsys, "serve", "/nonexistent/ix", "--refresh-seconds", value)
        assert out.returncode == 2 and "--refresh-seconds" in out.stderr, out.stderr
        assert "expected a number >= 0" in out.stderr and out.stderr.count("\n") == 1


def test_serve_on_a_missing_bucket_is_one_line_before_the_model_loads(s3_server, capsys):
    out = call(capsys, "serve", "s3://no-such-bucket/ix", "--port", "0", *s3_server.flags())
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("videoprism: error: cannot reach the index s3://no-such-bucket")
    assert "the bucket does not exist" in out.stderr and "Traceback" not in out.stderr


def _start_serve(env, args):
    """The command in a session of its own: a group to kill whole if it does not stop."""
    process = subprocess.Popen([sys.executable, "-m", "videoprism_keras.cli", "serve",
                                *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)  # fmt: skip
    ready, _, _ = select.select([process.stdout], [], [], SERVER_START_S)
    line = process.stdout.readline() if ready else ""
    if "serving" not in line:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"serve did not start: {line!r} {process.stderr.read()[-1500:]}")
    return process, line.split(" on ")[-1].split()[0]


def test_serve_on_s3_finds_clips_another_process_commits_within_the_bound(s3_server, env, lvt,
                                                                          indexed):  # fmt: skip
    from videoprism_keras.apps import VideoIndex

    _, tok = lvt
    uri = indexed
    process, url = _start_serve(env, [uri, "--port", "0", "--refresh-seconds", REFRESH_S,
                                      *s3_server.flags(), *tok])  # fmt: skip
    writer = None
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            info = client.get("/api/info").json()
            assert info["size"] == 12 and info["uri"] == uri

            def found():
                answer = client.get("/api/search", params={"q": "a video", "top_k": 50})
                return {hit["id"] for hit in answer.json()["hits"]}

            before = found()
            assert len(before) == 12
            dim = VideoIndex.load(uri, storage_options=s3_server.options()).dim
            writer = subprocess.Popen([sys.executable, str(WORKER), uri,
                                       json.dumps(s3_server.options()), "--dim", str(dim),
                                       "--count", "3", "--interval", "0.5"],
                                      stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
            seen: dict = {}  # a new clip's id → when a search first found it
            deadline = time.monotonic() + 90
            while len(seen) < 3 and time.monotonic() < deadline:
                ids, now = found(), time.time()
                for new in ids - before:
                    seen.setdefault(new, now)
                time.sleep(0.1)
            writer.wait(60)
            commits = [json.loads(line) for line in writer.stdout.read().splitlines()]
            assert writer.returncode == 0 and len(commits) == 3
            assert set(seen) == {c["id"] for c in commits}, (seen, commits)
            for commit in commits:
                late = seen[commit["id"]] - commit["committed"]
                assert late <= REFRESH_S + SIGHTING_MARGIN_S, (late, commit)
            assert client.get("/api/info").json()["size"] == 15
    finally:
        if writer is not None:
            if writer.poll() is None:
                writer.kill()
            writer.wait(30)
            writer.stdout.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # the whole group: nothing outlives the test
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            process.stdout.close()
    err = process.stderr.read()
    process.stderr.close()
    assert process.returncode == 0, err[-800:]
    # Nothing but our own lines: the S3 reads raised no errors or warnings in the server.
    assert all(line.startswith("videoprism:") for line in err.splitlines()), err[-800:]


def _by_id(uri, options, under):
    """id → row of the index's clips of videos in `under`, each id once."""
    from videoprism_keras.apps import VideoIndex

    rows = {}
    for row in VideoIndex.load(uri, storage_options=options).to_arrow().to_pylist():
        if row["path"].startswith(str(under)):
            assert row["id"] not in rows
            rows[row["id"]] = row
    return rows


def test_index_on_ray_into_s3_equals_in_process_and_a_second_run_adds_nothing(
    s3_server, ray_local, lvt, videos, indexed, capsys
):
    from videoprism_keras.cli import main

    model, _ = lvt
    uri = f"s3://{s3_server.bucket()}/ix"
    command = ["index", videos, "-o", uri, "--clip-seconds", "1", "--json", "--ray", ray_local,
               "--workers", "1", "--batch-size", "2", *s3_server.flags(), *model]  # fmt: skip
    capsys.readouterr()
    assert main(list(map(str, command))) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["added"] == first["size"] == 12
    assert main(list(map(str, command))) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["added"] == 0 and again["skipped"] == 12 and again["size"] == 12
    got = _by_id(uri, s3_server.options(), videos)
    expected = _by_id(indexed, s3_server.options(), videos)  # the same videos, without Ray
    assert sorted(got) == sorted(expected) and len(got) == 12
    for key, row in expected.items():
        assert got[key]["last_clip"] == row["last_clip"]
        np.testing.assert_allclose(got[key]["vector"], row["vector"], atol=1e-5, rtol=0)


def test_a_served_index_whose_store_stops_answering_is_a_503_in_one_line():
    from fastapi.testclient import TestClient
    from helpers import TINY

    import videoprism_keras as vp
    from videoprism_keras.apps import VideoIndex
    from videoprism_keras.serve import SearchService, create_app

    model = vp.VideoPrismBackbone(**TINY)  # never run: clips are searched by their vectors
    own = s3.serve()  # a server of this test's own, to stop
    server = next(own)
    try:
        uri = f"s3://{server.bucket()}/ix"
        rows = _rows(3)
        VideoIndex(uri, storage_options=server.options()).commit(rows)
        index = VideoIndex.load(uri, storage_options=server.options(), in_memory=True,
                                refresh_seconds=0)  # fmt: skip
        app = create_app(SearchService(index, model), warm_up=False)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            similar = f"/api/clips/{rows['id'][0].as_py()}/similar"
            assert len(client.get(similar, params={"top_k": 2}).json()["hits"]) == 2
            own.close()  # the endpoint stops answering
            answer = client.get(similar)  # each look fails after the store client's retries
            assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
            assert answer.json() == {"error": f"the index {uri} cannot be reached (the endpoint "
                                              "does not answer); it is served again once it "
                                              "answers"}  # fmt: skip
    finally:
        own.close()
