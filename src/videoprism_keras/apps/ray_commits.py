"""The Ray pipeline's write stage for an index (`ray_pipeline.index_on_ray`): the driver
gathers the clips the actors return and commits them by time and size, not per batch.

A commit's cost hardly depends on its rows (a table version, its manifest, a merge on
`id`), so committing each actor batch would cap a cluster at the driver's commit rate.
Here the clips wait in the driver until `RAY_COMMIT_CLIPS` of them are there, or until a
batch comes `RAY_COMMIT_SECONDS` or more after the last commit (the first batch is
committed at once: a wrong index shows at once). The driver is not woken between
batches: a slow pipeline (batches further apart than that) still commits each batch as it
comes. A commit runs in a thread of its own while the driver takes the next batches (one
commit at a time: those that come meanwhile wait for the next, which is then larger: once
`RAY_COMMIT_BACKLOG` times `RAY_COMMIT_CLIPS` wait, the driver waits for the commit under
way), so that a slow store (an object store's round trips) holds up neither Ray nor the
driver's bookkeeping.

Exactly once: the clips go in through `IndexWriter.commit` (a merge on the clip's stable
`id`); a clip that comes twice (a retried task, a replaced actor) is committed once,
whether the copies fall in one commit or in two.

Resume: a file's `last_clip` is set only in a commit that leaves the file whole (every clip
of it committed, in this run or an earlier one), or afterwards with `mark_complete`; rows
come back in any order, so a later run skips a file only when it is whole, and a kill
loses only the clips waiting here (fewer than `RAY_COMMIT_BACKLOG` times
`RAY_COMMIT_CLIPS`) and those of a commit cut short (a commit is atomic: the same command
embeds them again).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import RAY_COMMIT_BACKLOG, RAY_COMMIT_CLIPS, RAY_COMMIT_SECONDS
from ..video.times import time_key
from .identity import clip_id

if TYPE_CHECKING:
    from .identity import VideoFile
    from .index import IndexWriter

# The columns of a clip row the commit needs (the actors' batches have more).
_COLUMNS = ("file_id", "start_s", "end_s", "ordinal", "last", "duration_s", "vector", "poster")


@dataclass
class FileState:
    """What the driver knows of one file while its clips come back in any order."""

    # Clips as (start_s, end_s) keys: a clip that comes twice (a retried task) counts once.
    held: set  # clips the target held before this run
    done: set = field(default_factory=set)  # clips committed in this run
    count: int | None = None  # clips in the file, once its last one came
    last_id: str = ""
    marked: bool = False

    @property
    def whole(self) -> bool:
        return self.whole_with(0)

    def whole_with(self, more: int) -> bool:
        """Whether the file is whole once `more` clips of it (new ones) are committed."""
        return self.count is not None and len(self.held | self.done) + more >= self.count


class IndexCommits:
    """The driver's commits: `add` each batch the actors give, `flush` at the end.

    Args:
        writer: `IndexWriter`. The index written to (only from the commit thread, one
            call at a time, while a run lasts).
        files: dict. file_id → `VideoFile` of every file of the run.
        states: dict. file_id → `FileState`, updated here (in the caller's thread).
        on_commit: callable or None. Called with (files, start_s, end_s) of each commit's
            clips once it is made (the run's record, a progress bar). Defaults to None.
        seconds: float. Commit when a batch comes this long after the last commit began.
            Defaults to `RAY_COMMIT_SECONDS`.
        clips: int. Commit once this many clips wait. Defaults to `RAY_COMMIT_CLIPS`.
        clock: callable. Seconds, for the time rule. Defaults to `time.monotonic`.
    """

    def __init__(self, writer: IndexWriter, files: dict[str, VideoFile],
                 states: dict[str, FileState],
                 on_commit: Callable[[list, np.ndarray, np.ndarray], Any] | None = None,
                 seconds: float = RAY_COMMIT_SECONDS, clips: int = RAY_COMMIT_CLIPS,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.writer, self.files, self.states, self.on_commit = writer, files, states, on_commit
        self.seconds, self.clips, self.clock = seconds, clips, clock
        self.failures: list[tuple[str, str]] = []
        self.commits = 0  # commits of clips made
        self._waiting: list[dict] = []  # column slices of the clips not committed yet
        self._count = 0  # clips in `_waiting`
        self._failed: list[tuple[str, str]] = []  # failures not recorded yet
        self._touched: set = set()  # files that may have become whole since the last commit
        self._last = -np.inf  # when the last commit began
        self._write: _Write | None = None  # the commit in flight

    def add(self, batch: dict) -> None:
        """One batch of rows from the actors; commits if it is time (see the module)."""
        status = batch["status"]
        failed = [(str(batch["path"][i]), str(batch["reason"][i]))
                  for i in np.flatnonzero(status == "failed")]  # fmt: skip
        self.failures += failed
        self._failed += failed
        for i in np.flatnonzero(status == "held"):  # a held last clip: the file's count
            file_id = str(batch["file_id"][i])
            self._tell(file_id, int(batch["ordinal"][i]), batch["start_s"][i], batch["end_s"][i])
            self._touched.add(file_id)
        clips = np.flatnonzero(status == "clip")
        if len(clips):
            whole = len(clips) == len(status)
            self._waiting.append({k: batch[k] if whole else batch[k][clips] for k in _COLUMNS})
            self._count += len(clips)
        due = self._count >= self.clips or (self.clock() - self._last >= self.seconds
                                            and self._work())  # fmt: skip
        if not due:
            return
        if self._write is not None and not self._write.done():
            if self._count < RAY_COMMIT_BACKLOG * self.clips:
                return  # one commit at a time: these wait for the next, a larger one
        self.wait()
        self._start()

    def flush(self) -> None:
        """Commits what waits, and marks the files made whole; returns once all is done."""
        self.wait()
        for _ in range(2):  # the clips, then the files their commit made whole
            if not self._work():
                break
            self._start()
            self.wait()

    def _work(self) -> bool:
        """Whether a commit has something to do."""
        return bool(self._count or self._failed or self._late())

    def _late(self) -> list[str]:
        """Touched files now whole whose last clip is not marked (it came before others)."""
        return [f for f in self._touched if self.states[f].whole and not self.states[f].marked]

    def _tell(self, file_id, ordinal, start_s, end_s):
        state = self.states[file_id]
        state.count = ordinal + 1
        state.last_id = clip_id(file_id, start_s, end_s)

    def wait(self) -> None:
        """Waits for the commit in flight, if any (its error raised here), and takes note
        of it (`states`, `on_commit`)."""
        if self._write is not None:
            write, self._write = self._write, None
            write.wait()

    def _start(self) -> None:
        """The failures, the clips waiting (those not committed yet) and the late marks,
        into one commit in the commit thread; applied to `states` by `wait`."""
        late, self._touched = self._late(), set()
        failed, self._failed = self._failed, []
        clips = None
        if self._waiting:
            rows = {k: np.concatenate([part[k] for part in self._waiting]) for k in _COLUMNS}
            self._waiting, self._count = [], 0
            clips = self._clips(rows)
        late_ids = [self.states[f].last_id for f in late]

        def write():  # the commit thread: the writer's calls, in order
            if failed:
                self.writer.record_failures(failed)
            if clips is not None:
                self.writer.commit(*clips.arguments)
            if late_ids:
                self.writer.mark_complete(late_ids)

        def applied():  # the driver's thread, once `write` is done
            for f in late:
                self.states[f].marked = True
            if clips is not None:
                for (file_id, key), marked in zip(clips.keys, clips.last, strict=True):
                    state = self.states[file_id]
                    state.done.add(key)
                    state.marked = state.marked or marked
                self._touched |= {file_id for file_id, _ in clips.keys}
                self.commits += 1
                if self.on_commit is not None:
                    self.on_commit(*clips.arguments[:3])

        self._last = self.clock()
        self._write = _Write(write, applied)

    def _clips(self, rows: dict) -> _Clips | None:
        """The clips of `rows` to commit: each once, none committed before; None if none."""
        new, file_ids, keys = self._new(rows)
        if not new:
            return None
        # Whether each file is whole once this commit is in: only then its last clip is
        # marked (with it in the table, a later run skips the file).
        states = self.states
        extra = Counter(file_ids[i] for i in new if keys[i] not in states[file_ids[i]].held)
        whole = {f: self.states[f].whole_with(extra[f]) for f in set(file_ids)}
        last = (rows["last"][new] & np.array([whole[file_ids[i]] for i in new])).tolist()
        arguments = ([self.files[file_ids[i]] for i in new], rows["start_s"][new],
                     rows["end_s"][new], rows["vector"][new], last, list(rows["poster"][new]),
                     rows["duration_s"][new].astype(float))  # fmt: skip
        return _Clips(arguments, [(file_ids[i], keys[i]) for i in new], last)

    def _new(self, rows: dict) -> tuple[list[int], list[str], list]:
        """The rows of clips not committed yet (each once), every row's file_id and key;
        the files' counts told by their last clips."""
        file_ids = rows["file_id"].astype(str).tolist()
        times = zip(rows["start_s"].tolist(), rows["end_s"].tolist(), strict=True)
        keys = [(time_key(s), time_key(e)) for s, e in times]
        new, seen = [], set()
        for i, (file_id, key) in enumerate(zip(file_ids, keys, strict=True)):
            if key not in self.states[file_id].done and (file_id, key) not in seen:
                seen.add((file_id, key))
                new.append(i)
        for i in np.flatnonzero(rows["last"]):  # every file's count, before `whole` is asked
            self._tell(file_ids[i], int(rows["ordinal"][i]), rows["start_s"][i], rows["end_s"][i])
        return new, file_ids, keys


@dataclass
class _Clips:
    """One commit's clips: `IndexWriter.commit`'s arguments, each clip's (file_id, key),
    and whether each is marked as its file's last."""

    arguments: tuple
    keys: list
    last: list


class _Write:
    """One commit in its own thread, so that the driver takes the next batches meanwhile.

    A daemon thread: a driver stopped (Ctrl-C) does not wait for it; a commit is atomic,
    so one cut short leaves the index as it was, and the next run embeds its clips.
    """

    def __init__(self, write: Callable[[], None], applied: Callable[[], None]):
        self.applied, self.error = applied, None
        self.thread = threading.Thread(target=self._run, args=(write,), daemon=True,
                                       name="videoprism-commit")  # fmt: skip
        self.thread.start()

    def _run(self, write):
        try:
            write()
        except BaseException as err:  # raised in the driver's thread by `wait`
            self.error = err

    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self) -> None:
        while self.thread.is_alive():  # short joins: Ctrl-C is seen meanwhile
            self.thread.join(0.1)
        if self.error is not None:
            raise self.error
        self.applied()
