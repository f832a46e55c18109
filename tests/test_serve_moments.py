"""`videoprism serve`'s moments and copies: /api/moments (by text, upload and clip id) with
the curves of the videos found, /api/copies and /api/clips/{id}/copies, their bad inputs,
and the page's timeline and copies view in a real headless Chromium (the timeline's
screenshot: tests/artifacts/serve/timeline.png; with VIDEOPRISM_DOCS_SCREENSHOT=1 also
docs/images/timeline.png). A real uvicorn on 127.0.0.1 over a small index of generated
videos: one long video of three sources, a re-encoded copy of its middle, an unrelated
video."""

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve import BROWSER_ARGS, start_server, watched_page

from videoprism_keras.apps import Embeddings, VideoIndex
from videoprism_keras.constants import COPY_MIN_SECONDS, COPY_THRESHOLD
from videoprism_keras.serve import SearchService, create_app
from videoprism_keras.serve.limits import (
    COPIES_RETRY_AFTER_S,
    MAX_CURVE_POINTS,
    MAX_REFINED_MOMENTS,
)

FPS, WIDTH, HEIGHT = 10, 64, 48
# The long video: (lavfi source, seconds); the copy is its middle segment re-encoded.
# Seeded: life and cellauto start from random cells otherwise.
LONG = [("life=mold=10:ratio=0.3:seed=7", 6), ("testsrc2", 6), ("mandelbrot", 6)]
OTHER = ("cellauto=seed=7", 8)
COPY_START, COPY_END = 6.0, 12.0  # the copied span of the long video
UPLOAD_LIMIT = 1_000_000
CLIP = "0123456789abcdef0123456789abcdef@0.000000-2.000000"  # well-formed, not in the index
ARTIFACTS = Path(__file__).parent / "artifacts" / "serve"
DOCS_IMAGE = Path(__file__).parents[1] / "docs" / "images" / "timeline.png"


def lavfi_frames(source: str, seconds: float) -> np.ndarray:
    """`seconds` of a libav generator's frames, (T, H, W, 3) uint8."""
    name, _, options = source.partition("=")
    spec = f"{name}=size={WIDTH}x{HEIGHT}:rate={FPS}" + (f":{options}" if options else "")
    frames = []
    with av.open(spec, format="lavfi") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == round(seconds * FPS):
                break
    return np.stack(frames)


def write_mp4(path: Path, frames: np.ndarray, crf: int = 18) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf), "bf": "0"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """long.mp4 (life, testsrc2, mandelbrot: 6 s each), copy.mp4 (its 6–12 s at a low
    bitrate) and other.mp4 (cellauto, unrelated)."""
    root = tmp_path_factory.mktemp("moments")
    parts = [lavfi_frames(source, seconds) for source, seconds in LONG]
    long = write_mp4(root / "long.mp4", np.concatenate(parts))
    copy = write_mp4(root / "copy.mp4", parts[1], crf=36)
    other = write_mp4(root / "other.mp4", lavfi_frames(*OTHER))
    return {"long": long, "copy": copy, "other": other}


@pytest.fixture(scope="module")
def lvt(golden_dir, media_dir):
    import videoprism_keras as vp

    model = vp.load_flax_checkpoint(golden_dir / "lvt_small.ckpt.npz", attention_logit_soft_cap=5.0)
    return model, vp.VideoPrismTokenizer(media_dir / "test_spm.model")


@pytest.fixture(scope="module")
def index_uri(lvt, library, tmp_path_factory):
    uri = tmp_path_factory.mktemp("index") / "ix"
    VideoIndex(uri).add_videos(lvt[0], sorted(library.values()), clip_seconds=2.0,
                               stride_seconds=1.0, batch_size=8, num_frames=4, size=(32, 32),
                               progress=False)  # fmt: skip
    return uri


@pytest.fixture(scope="module")
def server(lvt, index_uri):
    model, tokenizer = lvt
    service = SearchService(VideoIndex.load(index_uri), model, tokenizer)
    url, stop = start_server(create_app(service, max_upload_bytes=UPLOAD_LIMIT, warm_up=False))
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client, service
    stop()


def assert_clean_error(response, status):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text
    return response.json()["error"]


def clip_of(client, path: Path, start_s: float) -> str:
    """The id of the indexed window of `path` that starts at `start_s`."""
    hits = client.get("/api/search", params={"q": "a", "top_k": 100}).json()["hits"]
    return next(h["id"] for h in hits if h["path"] == str(path) and h["start_s"] == start_s)


def assert_moments_answer(answer: dict) -> None:
    """Moments best first; a curve and a video for each video with a moment, in order."""
    moments, curves = answer["moments"], answer["curves"]
    scores = [m["score"] for m in moments]
    assert moments and scores == sorted(scores, reverse=True)
    paths = list(dict.fromkeys(m["path"] for m in moments))
    assert [c["path"] for c in curves] == paths and set(answer["videos"]) == set(paths)
    for curve in curves:
        n = len(curve["scores"])
        assert n > 1 and len(curve["start_s"]) == n == len(curve["end_s"])
        assert curve["start_s"] == sorted(curve["start_s"])
    for m in moments:
        assert 0 <= m["start_s"] < m["end_s"], m
        video = answer["videos"][m["path"]]
        assert m["end_s"] <= video["duration_s"] + 0.5
        assert video["video_url"] == f"api/clips/{video['clip']}/video"
        assert m["clip"].split("@")[0] == video["clip"].split("@")[0]
        assert m["poster_url"] == f"api/clips/{m['clip']}/poster.jpg"


def test_moments_by_upload_find_the_copied_span_refined(server, library):
    client, _ = server
    answer = client.post("/api/moments", params={"top_k": 3, "filename": "q.mp4"},
                         content=library["copy"].read_bytes(),
                         headers={"Content-Type": "video/mp4"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert_moments_answer(answer)
    assert answer["refined"] and answer["query"]["kind"] == "upload"
    assert answer["query"]["filename"] == "q.mp4"
    # The query's own content: the copy itself, and the long video's middle (within a
    # window of the truth: the small random checkpoint only tells the sources apart).
    found = {m["path"]: m for m in reversed(answer["moments"])}
    assert {str(library["copy"]), str(library["long"])} <= set(found)
    long = found[str(library["long"])]
    assert abs(long["start_s"] - COPY_START) <= 1.0 and abs(long["end_s"] - COPY_END) <= 1.0
    # Each moment's poster is a window the index holds.
    for m in answer["moments"]:
        poster = client.get("/" + m["poster_url"])
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"


def test_moments_by_text_and_by_clip_with_one_video_coarse(server, library):
    client, _ = server
    answer = client.get("/api/moments", params={"q": "a test pattern", "top_k": 4})
    assert answer.status_code == 200, answer.text
    assert_moments_answer(answer.json())
    assert answer.json()["query"]["q"] == "a test pattern"
    clip = clip_of(client, library["copy"], 2.0)
    like = client.get(f"/api/clips/{clip}/moments", params={"refine": "false"}).json()
    assert_moments_answer(like)
    assert not like["refined"] and like["query"] == {**like["query"], "kind": "similar",
                                                     "clip": clip}  # fmt: skip
    # Coarse moments are made of the index's windows: edges between window centres.
    assert all(0 <= m["start_s"] and m["end_s"] <= 18.0 for m in like["moments"])
    # `video`: one video's moments and its whole curve (the player's timeline of a hit),
    # whatever the filter keeps of it for the moments.
    long = clip_of(client, library["long"], 0.0)
    params = {"video": long, "refine": "false", "where": "start_s >= 3"}
    one = client.get(f"/api/clips/{clip}/moments", params=params).json()
    assert {m["path"] for m in one["moments"]} == {str(library["long"])}
    assert all(m["end_s"] > 3 for m in one["moments"])
    assert [c["path"] for c in one["curves"]] == [str(library["long"])]
    curve = one["curves"][0]
    assert curve["start_s"][0] == 0.0 and curve["end_s"][-1] >= 17.5  # the whole 18 s
    kinds = client.get("/api/metrics").json()["by_kind"]
    assert kinds["moments"]["count"] >= 1 and kinds["moments_similar"]["count"] >= 2
    schema = client.get("/openapi.json").json()
    for path in ("/api/moments", "/api/clips/{clip_id}/moments", "/api/copies",
                 "/api/clips/{clip_id}/copies"):  # fmt: skip
        assert path in schema["paths"]
    body = schema["paths"]["/api/moments"]["post"]["requestBody"]
    assert str(UPLOAD_LIMIT) in body["description"] and "video/mp4" in body["content"]


@pytest.mark.parametrize(
    ("route", "params", "status", "words"),
    [
        ("/api/moments", {"q": " "}, 400, "q: empty"),
        ("/api/moments", {}, 422, "q: Field required"),
        ("/api/moments", {"q": "x", "top_k": 0}, 422, "top_k"),
        ("/api/moments", {"q": "x", "where": "DROP TABLE clips"}, 400, "where:"),
        ("/api/moments", {"q": "x", "under": "videos"}, 400, "under: expected an absolute"),
        ("/api/moments", {"q": "x", "video": "nope"}, 422, "video"),
        ("/api/moments", {"q": "x", "video": CLIP}, 404, f"no clip {CLIP}"),
        ("/api/moments", {"q": "x", "shots": "true", "refine": "false"}, 400, "shots:"),
        ("/api/moments", {"q": "x", "top_k": MAX_REFINED_MOMENTS + 1}, 400, "top_k: at most"),
        (f"/api/clips/{CLIP}/moments", {"top_k": 100}, 400, "Received: top_k=100; ask fewer"),
        (f"/api/clips/{CLIP}/moments", {}, 404, f"no clip {CLIP}"),
        ("/api/copies", {"threshold": 0}, 400, "threshold: expected a similarity in (0, 1]"),
        ("/api/copies", {"threshold": 1.5}, 400, "Received: 1.5"),
        ("/api/copies", {"threshold": "nan"}, 400, "threshold:"),
        ("/api/copies", {"min_seconds": -1}, 400, "min_seconds: expected a positive"),
        ("/api/copies", {"threshold": "high"}, 422, "threshold:"),
        (f"/api/clips/{CLIP}/copies", {}, 404, f"no clip {CLIP}"),
        ("/api/clips/../../etc/passwd/copies", {}, 404, ""),
    ],
)
def test_bad_moments_and_copies_requests_are_one_clear_4xx(server, route, params, status, words):
    client, _ = server
    assert words in assert_clean_error(client.get(route, params=params), status)


def test_bad_moment_uploads_are_refused_before_the_model(server):
    client, _ = server
    post = client.post
    wrong = post("/api/moments", content=b"x", headers={"Content-Type": "text/plain"})
    assert "Content-Type text/plain" in assert_clean_error(wrong, 415)
    big = post("/api/moments", content=b"0" * (UPLOAD_LIMIT + 1),
               headers={"Content-Type": "video/mp4"})  # fmt: skip
    assert str(UPLOAD_LIMIT) in assert_clean_error(big, 413)
    junk = post("/api/moments", content=b"not a video", headers={"Content-Type": "video/mp4"})
    assert "not a readable video" in assert_clean_error(junk, 415)
    where = post("/api/moments", params={"where": "nope("}, content=b"x",
                 headers={"Content-Type": "video/mp4"})  # fmt: skip
    assert assert_clean_error(where, 400).startswith("where:")
    # Every option is checked before the (junk) body is read: its refusal, not the body's.
    for params, status, words in (({"shots": "true", "refine": "false"}, 400, "shots:"),
                                  ({"top_k": MAX_REFINED_MOMENTS + 1}, 400, "top_k:"),
                                  ({"video": CLIP}, 404, f"no clip {CLIP}")):  # fmt: skip
        early = post("/api/moments", params=params, content=b"not a video",
                     headers={"Content-Type": "video/mp4"})  # fmt: skip
        assert words in assert_clean_error(early, status), params


def test_a_model_failure_while_refining_is_a_bare_500(server, monkeypatch):
    client, service = server

    def out_of_memory(*args):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")

    monkeypatch.setattr(service, "_refine", out_of_memory)
    answer = client.get("/api/moments", params={"q": "a", "top_k": 2})
    assert assert_clean_error(answer, 500) == "internal error (see the server's log)"


def test_a_long_curve_is_thinned_for_the_page_its_peak_kept(lvt, tmp_path):
    model, tokenizer = lvt
    windows, peak = 3 * MAX_CURVE_POINTS + 7, 1234  # not a multiple: uneven runs
    vectors = np.random.default_rng(0).normal(size=(windows, 32)).astype(np.float32)
    starts = np.arange(windows, dtype=np.float64)
    index = VideoIndex(tmp_path / "long").add(
        Embeddings(vectors, ["/v/long.mp4"] * windows, starts, starts + 2.0))  # fmt: skip
    full = index.curves(vectors[peak])[0]
    assert len(full) == windows and int(np.argmax(full.scores)) == peak
    clip = index.search(vectors[peak], 1)[0][0].id
    app = create_app(SearchService(index, model, tokenizer), warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get(f"/api/clips/{clip}/moments", params={"refine": "false"})
    assert answer.status_code == 200, answer.text
    (curve,) = answer.json()["curves"]
    n = len(curve["scores"])
    assert n == MAX_CURVE_POINTS and len(curve["start_s"]) == n == len(curve["end_s"])
    # The whole video still, in order; each point spans its run of windows.
    assert curve["start_s"][0] == 0.0 and curve["end_s"][-1] == windows + 1.0
    assert curve["start_s"] == sorted(curve["start_s"])
    assert all(e - s >= 2.0 for s, e in zip(curve["start_s"], curve["end_s"], strict=True))
    # The peak survives, at its place, and its moment's poster is the peak's own window.
    best = int(np.argmax(curve["scores"]))
    assert curve["scores"][best] == pytest.approx(float(full.scores[peak]))
    assert curve["start_s"][best] <= peak and curve["end_s"][best] >= peak + 2.0
    assert answer.json()["moments"][0]["clip"] == clip


def test_an_index_of_whole_videos_says_moments_need_windows(lvt, tmp_path):
    model, tokenizer = lvt
    vectors = np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)
    index = VideoIndex(tmp_path / "whole").add(Embeddings(
        vectors, ["/v/a.mp4", "/v/b.mp4"], np.full(2, np.nan), np.full(2, np.nan)))  # fmt: skip
    app = create_app(SearchService(index, model, tokenizer), warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for params in ({}, {"where": "start_s IS NULL"}):  # the index's fault, not the filter's
            answer = client.get("/api/moments", params={"q": "a cat", "refine": "false", **params})
            assert assert_clean_error(answer, 400).startswith("the index "), params
        bad = client.get("/api/moments", params={"q": "a cat", "where": "start_s > 'x'"})
        assert assert_clean_error(bad, 400).startswith("where: the filter could not be")


def test_copies_of_the_index_and_of_one_clip_kept_per_version(server, library):
    client, _ = server
    # The library's default threshold, asked for by name: it shares the default's run.
    strict = {"threshold": 0.9}
    first = client.get("/api/copies", params=strict)
    assert first.status_code == 200, first.text
    answer = first.json()
    pair = {str(library["long"]), str(library["copy"])}
    group = next(g for g in answer["groups"] if pair <= set(g["paths"]))
    assert str(library["other"]) not in group["paths"] and set(answer["videos"]) >= pair
    again = client.get("/api/copies", params=strict).json()
    assert again["cached"] and again["groups"] == answer["groups"]
    assert again["index_version"] == answer["index_version"]
    # Left out, the settings are the library's: the same run's answer, said as used.
    default = client.get("/api/copies").json()
    assert default["cached"] and default["groups"] == answer["groups"]
    assert default["query"] == {"threshold": COPY_THRESHOLD, "min_seconds": COPY_MIN_SECONDS}
    # Turned so that `a` is the asked clip's video: the copy is all of it, and a time t in
    # the long video is t + offset_s in it.
    clip = clip_of(client, library["copy"], 2.0)
    mine = client.get(f"/api/clips/{clip}/copies", params=strict).json()
    assert mine["clip"]["id"] == clip and mine["copies"]
    copy = mine["copies"][0]
    assert copy["a"]["path"] == str(library["copy"]) and copy["b"]["path"] == str(library["long"])
    # Within a window (2 s) of the truth: the offset is voted over 1 s strides.
    assert abs(copy["offset_s"] + COPY_START) <= 1.5, copy
    assert abs(copy["b"]["start_s"] + copy["offset_s"] - copy["a"]["start_s"]) < 1e-6
    assert set(mine["videos"]) == pair and mine["cached"]
    assert mine["videos"][str(library["long"])]["video_url"].endswith("/video")
    other = clip_of(client, library["other"], 0.0)
    assert client.get(f"/api/clips/{other}/copies", params=strict).json()["copies"] == []
    # Other settings: another run, kept beside the first.
    none = client.get("/api/copies", params={"threshold": 1.0, "min_seconds": 100}).json()
    assert none["groups"] == [] and not none["cached"]
    assert none["query"] == {"threshold": 1.0, "min_seconds": 100}


# Records where the player is sent (its time as a seek begins): the time it is at later
# depends on how long it has played meanwhile.
SEEKS = """() => { window.seeks = []; const v = document.getElementById('video');
    v.addEventListener('seeking', () => window.seeks.push(v.currentTime)); }"""
PLAYER_READY = """() => { const v = document.getElementById('video');
    return v.readyState >= 1 && !v.seeking; }"""


def test_the_timeline_and_copies_in_a_real_browser(server, library, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    client = server[0]
    base = str(client.base_url).rstrip("/")
    query = clip_of(client, library["copy"], 2.0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems, elsewhere = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path="/usr/bin/chromium", args=BROWSER_ARGS,
            headless=True, viewport={"width": 800, "height": 1100})  # fmt: skip
        page = watched_page(browser, base, problems, elsewhere)
        # Moments like a clip of the copy: the copy itself and the long video's middle.
        page.goto(f"{base}/?similar={query}&moments=1")
        page.wait_for_function("() => document.getElementById('results').dataset.state"
                               " === 'ready' && document.querySelector('.card')")  # fmt: skip
        assert page.is_checked("#moments") and "moment" in page.text_content("#status")
        names = page.eval_on_selector_all(".card .name", "ns => ns.map((n) => n.textContent)")
        assert "long.mp4" in names and "copy.mp4" in names, names
        page.locator(".card .thumb").nth(names.index("long.mp4")).click()
        page.wait_for_selector("#timeline:not([hidden]) .timeline-plot polyline")
        page.wait_for_function(PLAYER_READY)
        marked = page.eval_on_selector_all(
            "#timeline-plot .moment", "rs => rs.map((r) => [+r.dataset.start, +r.dataset.end])"
        )
        assert any(abs(a - COPY_START) <= 1.0 and abs(b - COPY_END) <= 1.0 for a, b in marked)
        # A click on the timeline seeks the player there (the plot spans the whole 18 s).
        box = page.locator("#timeline-plot").bounding_box()
        page.evaluate(SEEKS)
        page.mouse.click(box["x"] + box["width"] * 8.0 / 18.0, box["y"] + box["height"] / 2)
        page.wait_for_function("() => window.seeks.length > 0")
        target = page.evaluate("window.seeks[0]")  # where the click sent the player
        assert abs(target - 8.0) <= 0.5, target
        page.wait_for_function(PLAYER_READY)
        page.evaluate("document.getElementById('video').pause()")  # it plays from there
        now = page.evaluate("document.getElementById('video').currentTime")
        head = float(page.get_attribute("#timeline-plot .playhead", "x1"))
        assert abs(head - 1000 * now / 18.0) <= 30, (head, now)
        # The copies of the video in the player: the planted copy, listed with its spans.
        page.click("#copies-find")
        page.wait_for_selector("#copies-list li")
        listed = page.text_content("#copies-list")
        assert "copy.mp4" in listed and "here" in listed and "there" in listed
        page.wait_for_timeout(300)  # the playhead and the poster settle
        shot = ARTIFACTS / "timeline.png"
        page.locator("#player").screenshot(path=shot)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=ARTIFACTS / "phone_timeline.png")
        page.set_viewport_size({"width": 800, "height": 1100})
        # A click opens the copy at the same content: the long video's t is t − offset_s in
        # the copy (`a` is the video in the player). The list is the answer's, in order.
        answer = client.get(f"/api/clips/{clip_of(client, library['long'], 0.0)}/copies").json()
        rank, copy = next((i, c) for i, c in enumerate(answer["copies"])
                          if c["b"]["path"] == str(library["copy"])
                          and c["a"]["start_s"] <= now <= c["a"]["end_s"])  # fmt: skip
        page.locator("#copies-list button").nth(rank).click()
        page.wait_for_function("() => document.getElementById('player-title').textContent"
                               " === 'copy.mp4'")  # fmt: skip
        page.wait_for_function(PLAYER_READY)
        first = page.evaluate("""() => { const v = document.getElementById('video');
            return v.played.length ? v.played.start(0) : v.currentTime; }""")
        assert abs(first - (now - copy["offset_s"])) <= 0.6, (first, now, copy)

        # A clip of an ordinary search gets its video's timeline too (coarse: as indexed).
        page.goto(f"{base}/?similar={query}")
        page.wait_for_function("() => document.getElementById('results').dataset.state"
                               " === 'ready' && document.querySelector('.card')")  # fmt: skip
        page.locator(".card .thumb").first.click()
        page.wait_for_selector("#timeline:not([hidden]) .timeline-plot polyline")
        assert "as indexed" in page.text_content("#timeline-note")
        page.click("#close")

        # The whole index's copies: the planted pair listed; a click plays its first side.
        page.click("#all-copies")
        page.wait_for_selector(".group .copies-list button")
        assert "copies=1" in page.url
        pairs = page.eval_on_selector_all(
            ".group .copies-list button", "bs => bs.map((b) => b.textContent)"
        )
        assert any("long.mp4" in p and "copy.mp4" in p for p in pairs), pairs
        page.screenshot(path=ARTIFACTS / "copies.png", full_page=True)
        page.locator(".group .copies-list button").first.click()
        page.wait_for_function(PLAYER_READY)
        assert page.text_content("#player-title") in ("long.mp4", "copy.mp4")
        browser.close()
    assert problems == [] and elsewhere == []
    if os.environ.get("VIDEOPRISM_DOCS_SCREENSHOT"):  # the docs' picture, made small
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(shot) as image:
            image.convert("RGB").quantize(128).save(DOCS_IMAGE, optimize=True)
        assert DOCS_IMAGE.stat().st_size < 150_000


def test_copies_run_once_off_the_event_loop_while_searches_go_on(server, library, monkeypatch):
    client, _ = server
    runs, original = [], VideoIndex.copies
    release = threading.Event()

    def slow(self, **options):  # a whole-index job that takes its time
        runs.append(options)
        release.wait(30)
        return original(self, **options)

    monkeypatch.setattr(VideoIndex, "copies", slow)
    params = {"threshold": 0.95, "min_seconds": 2.5}  # settings no other test asks for
    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(client.get, "/api/copies", params=params) for _ in range(3)]
        deadline = time.monotonic() + 30
        while not runs and time.monotonic() < deadline:
            time.sleep(0.02)
        # The run holds neither the event loop nor the index: searches are answered.
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/search", params={"q": "a", "top_k": 3}).status_code == 200
        # One run at a time: other settings meanwhile are refused, saying when to retry.
        busy = client.get("/api/copies", params={"threshold": 0.8})
        assert "threshold=0.95, min_seconds=2.5 is under way" in assert_clean_error(busy, 503)
        assert int(busy.headers["Retry-After"]) == COPIES_RETRY_AFTER_S
        assert not any(f.done() for f in waiting)
        release.set()
        answers = [f.result().json() for f in waiting]
    assert runs == [{**params, "path": None}]
    assert answers[0]["groups"] == answers[1]["groups"] == answers[2]["groups"]
    assert client.get("/api/copies", params=params).json()["cached"] and len(runs) == 1
    # One clip's copies for settings no whole run has kept: that video's windows alone.
    clip = clip_of(client, library["copy"], 0.0)
    mine = client.get(f"/api/clips/{clip}/copies", params={"threshold": 0.85})
    assert mine.status_code == 200 and not mine.json()["cached"]
    assert runs[-1] == {"threshold": 0.85, "min_seconds": COPY_MIN_SECONDS,
                        "path": str(library["copy"])}  # fmt: skip


def test_a_copies_answer_says_the_table_version_its_run_read(lvt, tmp_path, monkeypatch):
    model, tokenizer = lvt
    rng = np.random.default_rng(1)

    def windows(path: str, n: int = 8) -> Embeddings:
        starts = np.arange(n, dtype=np.float64)
        vectors = rng.normal(size=(n, 32)).astype(np.float32)
        return Embeddings(vectors, [path] * n, starts, starts + 2.0)

    index = VideoIndex(tmp_path / "ix").add(windows("/v/a.mp4"))
    original = VideoIndex.copies

    def committed_meanwhile(self, **options):  # another writer commits as the run begins
        VideoIndex.load(tmp_path / "ix").add(windows("/v/b.mp4"))
        return original(self, **options)

    monkeypatch.setattr(VideoIndex, "copies", committed_meanwhile)
    app = create_app(SearchService(index, model, tokenizer), warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        asked_at = client.get("/api/info").json()["version"]
        answer = client.get("/api/copies")
        now = client.get("/api/info").json()["version"]
    assert answer.status_code == 200, answer.text
    assert now > asked_at and answer.json()["index_version"] == now


def test_a_video_broken_since_indexing_is_one_clear_error(lvt, library, tmp_path):
    model, tokenizer = lvt
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("long", "copy"):
        shutil.copy(library[name], folder / f"{name}.mp4")
    index = VideoIndex(tmp_path / "ix")
    index.add_videos(model, sorted(folder.iterdir()), clip_seconds=2.0, stride_seconds=1.0,
                     batch_size=8, num_frames=4, size=(32, 32), progress=False)  # fmt: skip
    (folder / "long.mp4").write_bytes(b"not a video any more")
    app = create_app(SearchService(index, model, tokenizer), warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        clip = clip_of(client, folder / "copy.mp4", 0.0)
        refined = client.get(f"/api/clips/{clip}/moments")
        assert "refine=false" in assert_clean_error(refined, 404)
        coarse = client.get(f"/api/clips/{clip}/moments", params={"refine": "false"})
        assert coarse.status_code == 200 and coarse.json()["moments"]


def test_the_new_routes_want_the_token_and_uploads_their_own_origin(lvt, index_uri):
    model, tokenizer = lvt
    service = SearchService(VideoIndex.load(index_uri), model, tokenizer)
    app = create_app(service, token="s3cret-token", max_upload_bytes=UPLOAD_LIMIT, warm_up=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in ("/api/moments?q=a", "/api/copies", f"/api/clips/{CLIP}/moments",
                     f"/api/clips/{CLIP}/copies"):  # fmt: skip
            assert client.get(path).status_code == 401, path
        video = {"Content-Type": "video/mp4"}
        assert client.post("/api/moments", content=b"x", headers=video).status_code == 401
        token = {"Authorization": "Bearer s3cret-token"}
        evil = {**video, **token, "Origin": "http://evil.example"}
        foreign = client.post("/api/moments", content=b"x", headers=evil)
        assert "Origin" in assert_clean_error(foreign, 403)
        big = client.post("/api/moments", content=b"0" * (UPLOAD_LIMIT + 1),
                          headers={**video, **token})  # fmt: skip
        assert str(UPLOAD_LIMIT) in assert_clean_error(big, 413)
        ok = client.get("/api/moments", params={"q": "a", "refine": "false"}, headers=token)
        assert ok.status_code == 200 and ok.json()["moments"]
