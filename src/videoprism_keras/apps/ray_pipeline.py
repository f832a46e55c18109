"""Video collections → embeddings on a Ray cluster (Ray Data), into a `VideoIndex` or an
embeddings file: the same results as `add_videos`/`embed_videos`, on many machines.

    index = VideoIndex("my_index")
    index_on_ray(model, ["videos/", "more/*.mp4", "list.parquet"], index, clip_seconds=10)

The stages, one Ray Data pipeline, streamed (no stage waits for the previous to finish):

1. list (driver, `ray_sources.py`): files, folders, globs, and .parquet/.csv files with
   a `path` column of local paths or URIs (whatever pyarrow's filesystems open);
2. filter (driver, before anything is decoded): files the target holds whole are left
   out; for the others, the clips it holds travel with the item and are not embedded;
3. decode (CPU tasks, `video/clip_rows.py`): the in-process decoding code, frames kept
   as uint8 (bit-identical float32 frames are made from them in the model stage);
4. model (`ray_model.py`: an actor pool, one loaded model per actor, `workers` actors,
   each with `num_gpus_per_worker` GPUs): the same compiled `Encoder` as in process;
5. write (driver, `ray_commits.py`): the clips the actors give are committed by time and
   size (at most every `RAY_COMMIT_SECONDS`, or `RAY_COMMIT_CLIPS` at a time).

Exactly once: every write is the driver's, and an index write is a `merge_insert` on
the clip's stable `id` (see `index/writer.py`), so a batch computed twice (a retried task, a
replaced actor, a second run after a kill) is stored once; an embeddings file is written
through `EmbeddingWriter`, whose parts a resumed run reads back, and the driver drops an
item it has already written in this run. Ray's own Lance sink (`Dataset.write_lance`) is
not used: its workers each write fragments and the driver commits them once at the end,
so a job killed after hours keeps nothing, and a re-run appends (no merge on `id`).

Resume: a file's `last_clip` is set only once all its clips are committed (rows come
back out of order from many actors), so a later run skips a file only when it is whole,
and embeds the clips a killed run had not committed (those waiting in the driver for
their commit among them).

Memory: Ray Data's streaming executor holds back the decode tasks when the object
store's budget for the pipeline is used (backpressure); beyond that, each decode task
holds one output block (Ray Data's target block size), each actor one batch, the
driver one batch (an index's driver: the clips waiting for their commit, without their
frames, at most `RAY_COMMIT_BACKLOG` commits' worth): the bound does not depend on the
collection's size.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import RAY_COMMIT_CLIPS, RAY_COMMIT_SECONDS
from ..deprecation import message as deprecation_message
from ..progress import expected_items, progress_bar
from ..video.options import Sampling
from .embedding import Embeddings, check_shot_windows, item_key, nothing_embedded
from .ray_commits import FileState, IndexCommits
from .ray_engine import EngineChoice, prepare
from .ray_model import Embedder, PresetLoader
from .ray_session import RayUnavailable, check_address, driver_messages_on_stderr, ray_session
from .ray_sources import Sources, list_sources, listed_videos, local_sources, source_files

if TYPE_CHECKING:
    from ..model.backbone import VideoPrismBackbone
    from .embed_writer import EmbeddingWriter
    from .index import VideoIndex

__all__ = ["EngineChoice", "PresetLoader", "RayOptions", "RayRun", "RayUnavailable",
           "check_address", "driver_messages_on_stderr", "embed_on_ray", "failures_of",
           "index_on_ray", "list_sources", "local_sources", "ray_session"]  # fmt: skip

MAX_BLOCKS = 2048  # items per decode task: at least len(items) / this


# ------------------------------------------------------------------- the pipeline
@dataclass
class RayOptions:
    """How the pipeline runs: actors, GPUs per actor, batch size, progress, an index's
    commits (by time and size), and the stages' code (`encoder`, `decoder`: a null
    pipeline, `ray_null.py`, replaces both to measure the rest)."""

    workers: int | None = None  # model actors; default one per GPU (or 1 without GPUs)
    num_gpus_per_worker: float = 0.0
    batch_size: int = 4
    progress: bool = False
    encoder: Callable | None = None  # an `Encoder` (sub)class for the actors
    decoder: Callable | None = None  # the decode stage, as `decode_rows` (`ray_null.py`)
    commit_seconds: float = RAY_COMMIT_SECONDS  # an index's commits: at most this often,
    commit_clips: int = RAY_COMMIT_CLIPS  # or at once with this many clips waiting
    column: str = "path"  # of .parquet/.csv source lists
    address: str | None = None  # if this process is not connected to Ray yet
    # The engine the actors run (`ray_engine.py`): None, Keras in the model's dtype.
    engine: EngineChoice | None = None


def clip_dataset(ray, items, model, kind, posters, sampling: dict, options: RayOptions,
                 driver_model=None):  # fmt: skip
    """The decode and model stages as one Ray Data dataset of `items` (dicts the decoder
    takes: `decode_rows`'s, or `options.decoder`'s), its rows the decoder's with a
    `vector` (and with `posters`, a `poster`); `sampling` is the decoder's arguments.
    With `options.engine`, the driver's artefact of `driver_model` (built now, before
    the pipeline) is what every actor runs."""
    import keras
    import ray.data

    from ..video.clip_rows import decode_rows

    workers = options.workers or _default_workers(ray, options.num_gpus_per_worker)
    decode = options.decoder or decode_rows
    engine = None
    if options.engine is not None:
        engine = prepare(ray, driver_model, options.engine, items, decode, sampling)
    blocks = max(1, min(len(items), MAX_BLOCKS))
    # The actors load Keras with the driver's backend, on whichever node they run.
    backend = {"env_vars": {"KERAS_BACKEND": keras.backend.backend()}}
    return (ray.data.from_items(items, override_num_blocks=blocks)
            .flat_map(decode, fn_kwargs=sampling, num_cpus=1)
            .map_batches(Embedder, fn_constructor_kwargs=dict(model=model, kind=kind,
                         posters=posters, encoder=options.encoder, batch_size=options.batch_size,
                         engine=engine),
                         batch_size=options.batch_size, batch_format="numpy",
                         compute=ray.data.ActorPoolStrategy(size=workers), runtime_env=backend,
                         num_gpus=options.num_gpus_per_worker or None))  # fmt: skip


@contextlib.contextmanager
def quiet_data():
    """Ray Data without its progress bars and log lines in the terminal (the driver shows
    its own bar, per committed clip; Ray Data's log file keeps everything), meanwhile."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    consoles = [h for h in logging.getLogger("ray.data").handlers if "File" not in type(h).__name__]
    levels = [h.level for h in consoles]
    for handler in consoles:
        handler.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)


def _default_workers(ray, gpus_per_worker) -> int:
    if not gpus_per_worker:
        return 1  # a CPU actor uses every core of its machine already
    return max(1, int(ray.cluster_resources().get("GPU", 0) // gpus_per_worker))


def _sampling(model, num_frames, size, clip_seconds, stride_seconds, shots=False) -> dict:
    """The decode stage's arguments (`decode_rows`): the model's sampling unless given."""
    sampling = Sampling.for_model(model, num_frames, size)
    return {"num_frames": sampling.num_frames, "size": sampling.size,
            "clip_seconds": clip_seconds, "stride_seconds": stride_seconds,
            "shots": shots}  # fmt: skip


def _rows(batches: Iterable[dict]):
    """Each committed batch's rows, as lists by status."""
    for batch in batches:
        status = batch["status"]
        yield {s: np.flatnonzero(status == s) for s in ("clip", "held", "failed")}, batch


@dataclass
class _Run:
    paths: list = field(default_factory=list)
    start_s: list = field(default_factory=list)
    end_s: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    skipped: int = 0

    def result(self, kind: str = "video") -> RayRun:
        return RayRun(np.zeros((len(self.paths), 0), np.float32), self.paths, self.start_s,
                      self.end_s, kind, self.failures, self.skipped)  # fmt: skip


class RayRun(Embeddings):
    """What `index_on_ray` and `embed_on_ray` return: an `Embeddings` record of the items
    written in this run (`paths`, `start_s`, `end_s`; the vectors are in the target, so
    `vectors` is (N, 0)), with `failures` and `skipped` (items the target already held).

    `embed_on_ray` returned a `(written, failures)` tuple before: unpacking or indexing
    a `RayRun` still gives that tuple for one release, with a `DeprecationWarning`.
    """

    @property
    def written(self) -> int:
        """Items written in this run."""
        return len(self)

    def _as_tuple(self) -> tuple[int, list]:
        warnings.warn(deprecation_message("embed_on_ray", "written, failures = embed_on_ray(…)",
                                          "run = embed_on_ray(…); run.written, run.failures"),
                      DeprecationWarning, stacklevel=3)  # fmt: skip
        return self.written, self.failures

    def __iter__(self) -> Iterator:
        return iter(self._as_tuple())

    def __getitem__(self, i: int) -> Any:
        return self._as_tuple()[i]


def index_on_ray(model: VideoPrismBackbone, sources: Sources, index: VideoIndex,
                 clip_seconds: float | None = None, stride_seconds: float | None = None, *,
                 num_frames: int | None = None, size: int | Sequence[int] | None = None,
                 load_model: Callable[[], VideoPrismBackbone] | None = None,
                 options: RayOptions | None = None, shots: bool = False) -> RayRun:  # fmt: skip
    """`VideoIndex.add_videos` on Ray: embeds video sources into `index`, the clips
    committed as they come back, by time and size (see the module docstring).

    Args:
        model: `VideoPrismBackbone`. Its preset and sampling define the index's settings.
        sources: path or sequence of paths. Files, folders, globs, .parquet/.csv lists
            of paths or URIs.
        index: `VideoIndex`. The index written to.
        clip_seconds: float or None. Windows of long videos, in seconds; None for whole
            videos. Defaults to None.
        stride_seconds: float or None. The windows' stride. Defaults to None
            (`clip_seconds`).
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        load_model: callable or None. Picklable, loads the model in each actor (e.g. a
            `PresetLoader`). Defaults to None (`model` itself is shipped to them).
        options: `RayOptions` or None. How the pipeline runs. Defaults to None
            (`RayOptions()`).
        shots: bool. Windows at shot cuts (see `VideoIndex.add_videos`; no
            `stride_seconds` then), found in the decoding tasks. Defaults to False.

    Returns:
        A `RayRun`, the record `add_videos` returns (paths and clip times of the clips
        added, `skipped`, `failures`); failures are also kept in the index's `failures`
        table.
    """
    options = options or RayOptions()
    check_shot_windows(shots, clip_seconds, stride_seconds)
    sampling = _sampling(model, num_frames, size, clip_seconds, stride_seconds, shots)
    writer = index.writer(model, clip_seconds, stride_seconds, num_frames=sampling["num_frames"],
                          size=sampling["size"], shots=shots,
                          encoder=options.engine)  # fmt: skip
    files, failures = source_files(sources, options.column)
    held, todo = writer.prepare(files)  # replaced files: their old rows go now
    run = _Run(failures=list(failures))
    by_id = {f.file_id: f for f in files}
    run.skipped = sum(len(keys) for keys, _ in held.values())  # whole files and clips
    states = {f.file_id: FileState({k[1:] for k in held.get(f.file_id, (set(),))[0]})
              for f in todo}  # fmt: skip
    items = [{"source": f.path, "path": f.path, "file_id": f.file_id,
              "held": json.dumps([k[1:] for k in held.get(f.file_id, (set(),))[0]])}
             for f in todo]  # fmt: skip
    writer.record_failures(run.failures)
    held_clips = [len(state.held) for state in states.values()]
    bar = progress_bar(options.progress, _left(options, [f.path for f in todo], clip_seconds,
                                               stride_seconds, held_clips))  # fmt: skip

    def committed(files, start_s, end_s):  # the run's record and the bar, per commit
        run.paths += [f.path for f in files]
        run.start_s += start_s.tolist()
        run.end_s += end_s.tolist()
        bar.update(len(files))

    if items:  # Ray only when there is work: a local instance takes seconds to start
        commits = IndexCommits(writer, by_id, states, committed, options.commit_seconds,
                               options.commit_clips)  # fmt: skip
        with ray_session(options.address) as ray, quiet_data():
            model_stage = load_model or model
            dataset = clip_dataset(ray, items, model_stage, "video", True, sampling, options,
                                   model)  # fmt: skip
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                commits.add(batch)
            commits.flush()
        run.failures += commits.failures
    _finish(bar)
    if not run.paths and not run.skipped and todo:
        raise nothing_embedded(run.failures)
    writer.forget_failures([f.path for f in todo if states[f.file_id].whole])
    writer.finish()
    return run.result()


def failures_of(index: VideoIndex) -> list[tuple[str, str]]:
    """(path, reason) of the inputs the index's Ray runs could not embed (latest first)."""
    return index.failures()


# --------------------------------------------------------------- embeddings file
def embed_on_ray(model: VideoPrismBackbone, sources: Sources, writer: EmbeddingWriter,
                 kind: str = "video", clip_seconds: float | None = None,
                 stride_seconds: float | None = None, *, num_frames: int | None = None,
                 size: int | Sequence[int] | None = None,
                 load_model: Callable[[], VideoPrismBackbone] | None = None,
                 options: RayOptions | None = None) -> RayRun:  # fmt: skip
    """`embed_batches` on Ray, into an `EmbeddingWriter` (whose `finish` the caller
    calls). Failures are also appended to `<output>.failures.jsonl`. Items come back in
    any order, not the sources'.

    Args:
        model: `VideoPrismBackbone`. The model.
        sources: path or sequence of paths. Files, folders, globs, .parquet/.csv lists
            of paths or URIs.
        writer: `EmbeddingWriter`. The output (items it holds from an earlier run are
            not embedded again).
        kind: str. The embedding, as `embed_videos` names it. Defaults to "video".
        clip_seconds: float or None. Windows of long videos, in seconds; None for whole
            videos. Defaults to None.
        stride_seconds: float or None. The windows' stride. Defaults to None
            (`clip_seconds`).
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        load_model: callable or None. Picklable, loads the model in each actor (e.g. a
            `PresetLoader`). Defaults to None (`model` itself is shipped to them).
        options: `RayOptions` or None. How the pipeline runs. Defaults to None
            (`RayOptions()`).

    Returns:
        A `RayRun`: the items written in this run (`written`, paths, clip times),
        `failures` ((path, reason) of the inputs that could not be embedded) and
        `skipped` (items of the sources the output already held).
    """
    if not isinstance(writer.path, Path):  # its failures log is a file beside the output
        raise ValueError(f"embed_on_ray writes a local file; the writer's output is "
                         f"{writer.path}: embed it locally, then copy it")  # fmt: skip
    options = options or RayOptions()
    sampling = _sampling(model, num_frames, size, clip_seconds, stride_seconds)
    videos, failures = listed_videos(sources, options.column)
    done: dict = {}
    for path, start_s, end_s in writer.resumed_items():
        done.setdefault(path, []).append([start_s, end_s])
    whole = not clip_seconds
    items = [{"source": v, "path": v, "file_id": "", "held": json.dumps(done.get(v, []))}
             for v in videos
             if not (whole and v in done)]  # fmt: skip
    run, seen = _Run(failures=failures, skipped=sum(len(done.get(v, ())) for v in videos)), set()
    log_path = writer.path.with_name(writer.path.name + ".failures.jsonl")
    if not writer.resumed:  # a new output: an earlier run's failures are not its own
        log_path.unlink(missing_ok=True)
    held = [len(done.get(item["path"], ())) for item in items]
    bar = progress_bar(options.progress, _left(options, [item["path"] for item in items],
                                               clip_seconds, stride_seconds, held))  # fmt: skip
    if items:
        with ray_session(options.address) as ray, quiet_data():
            dataset = clip_dataset(ray, items, load_model or model, kind, False, sampling, options,
                                   model)  # fmt: skip
            batches = dataset.iter_batches(batch_size=options.batch_size, batch_format="numpy")
            for kinds, batch in _rows(batches):
                new = [(str(batch["path"][i]), str(batch["reason"][i])) for i in kinds["failed"]]
                if new:
                    run.failures += new
                    with open(log_path, "a") as log:
                        log.writelines(json.dumps({"path": p, "reason": r}) + "\n" for p, r in new)
                keep = []
                for i in kinds["clip"]:  # a batch computed twice is written once
                    key = item_key(str(batch["path"][i]), batch["start_s"][i], batch["end_s"][i])
                    if key not in seen and not writer.done(*key):
                        seen.add(key)
                        keep.append(i)
                if keep:
                    paths = [str(batch["path"][i]) for i in keep]
                    start_s, end_s = batch["start_s"][keep], batch["end_s"][keep]
                    writer.write(Embeddings(batch["vector"][keep], paths, start_s, end_s, kind))
                    run.paths += paths
                    run.start_s += [float(t) for t in start_s]
                    run.end_s += [float(t) for t in end_s]
                    bar.update(len(keep))
    _finish(bar)
    return run.result(kind)


def _left(options: RayOptions, paths: list[str], clip_seconds: float | None,
          stride_seconds: float | None, held: list[int]) -> int | None:  # fmt: skip
    """The progress bar's total: the items of `paths` less those already `held`; None
    where they cannot be counted without fetching a file (or no bar is shown)."""
    if not options.progress:
        return None
    expected = expected_items(paths, clip_seconds, stride_seconds)
    return None if expected is None else max(expected - sum(held), 0)


def _finish(bar) -> None:
    """The bar closed at what was done: the count was an estimate, failures left out."""
    if bar.total is not None:
        bar.total = bar.n
    bar.close()
