"""The Ray pipeline's write stage for an index (`ray_pipeline.index_on_ray`): the driver
gathers the clips the actors return and commits them by time and size, not per batch.

A commit costs about as much for a few rows as for a thousand (a table version, its
manifest, a merge on `id`), so committing each actor batch would cap a cluster at the
driver's commit rate. Here the clips wait in the driver until `RAY_COMMIT_CLIPS` of them
are there, or until a batch comes `RAY_COMMIT_SECONDS` or more after the last commit (the
first batch is committed at once: a wrong index shows at once). The driver is not woken
between batches: a slow pipeline (batches further apart than that) still commits each
batch as it comes.

Exactly once: the clips go in through `IndexWriter.commit` (a merge on the clip's stable
`id`); a clip that comes twice (a retried task, a replaced actor) is committed once,
whether the copies fall in one commit or in two.

Resume: a file's `last_clip` is set only in a commit that leaves the file whole (every clip
of it committed, in this run or an earlier one), or afterwards with `mark_complete`; rows
come back in any order, so a later run skips a file only when it is whole, and a kill
loses only the clips waiting here (the same command embeds them again).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import RAY_COMMIT_CLIPS, RAY_COMMIT_SECONDS
from ..video.times import time_key
from .identity import clip_id

if TYPE_CHECKING:
    from .identity import VideoFile
    from .index import IndexWriter

# The columns of a clip row the commit needs (the actors' batches have more).
COLUMNS = ("file_id", "start_s", "end_s", "ordinal", "last", "duration_s", "vector", "poster")


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
        writer: `IndexWriter`. The index written to.
        files: dict. file_id → `VideoFile` of every file of the run.
        states: dict. file_id → `FileState`, updated here.
        on_commit: callable or None. Called with (files, start_s, end_s) of each commit's
            clips (the run's record, a progress bar). Defaults to None.
        seconds: float. Commit when a batch comes this long after the last commit.
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
        self._told: set = set()  # files whose count came with a held clip (no row to commit)
        self._last = -np.inf  # when the last commit was made

    def add(self, batch: dict) -> None:
        """One batch of rows from the actors; commits if it is time (see the module)."""
        status = batch["status"]
        failed = np.flatnonzero(status == "failed")
        if len(failed):  # few: recorded at once, each its own small write
            new = [(str(batch["path"][i]), str(batch["reason"][i])) for i in failed]
            self.failures += new
            self.writer.record_failures(new)
        for i in np.flatnonzero(status == "held"):  # a held last clip: the file's count
            file_id = str(batch["file_id"][i])
            self._tell(file_id, int(batch["ordinal"][i]), batch["start_s"][i], batch["end_s"][i])
            self._told.add(file_id)
        clips = np.flatnonzero(status == "clip")
        if len(clips):
            whole = len(clips) == len(status)
            self._waiting.append({k: batch[k] if whole else batch[k][clips] for k in COLUMNS})
            self._count += len(clips)
        if self._count >= self.clips or (self.clock() - self._last >= self.seconds
                                         and (self._count or self._told)):  # fmt: skip
            self.flush()

    def flush(self) -> None:
        """Commits the clips waiting (and marks the files they, or held clips, made whole)."""
        touched = set(self._told)
        self._told.clear()
        if self._waiting:
            rows = {k: np.concatenate([part[k] for part in self._waiting]) for k in COLUMNS}
            self._waiting, self._count = [], 0
            touched |= self._commit(rows)
        late = [f for f in touched if self.states[f].whole and not self.states[f].marked]
        if late:  # a file's last clip came before others of it
            self.writer.mark_complete([self.states[f].last_id for f in late])
            for f in late:
                self.states[f].marked = True

    def _tell(self, file_id, ordinal, start_s, end_s):
        state = self.states[file_id]
        state.count = ordinal + 1
        state.last_id = clip_id(file_id, start_s, end_s)

    def _commit(self, rows: dict) -> set:
        """The clips of `rows` not committed yet, in one commit; the files touched."""
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
        touched = set(file_ids)
        if not new:
            return touched
        # Whether each file is whole once this commit is in: only then its last clip is
        # marked (with it in the table, a later run skips the file).
        extra = Counter(file_ids[i] for i in new if keys[i] not in self.states[file_ids[i]].held)
        whole = {f: self.states[f].whole_with(extra[f]) for f in touched}
        last = rows["last"][new] & np.array([whole[file_ids[i]] for i in new])
        files = [self.files[file_ids[i]] for i in new]
        start_s, end_s = rows["start_s"][new], rows["end_s"][new]
        self.writer.commit(files, start_s, end_s, rows["vector"][new], last.tolist(),
                           list(rows["poster"][new]),
                           rows["duration_s"][new].astype(float))  # fmt: skip
        self.commits += 1
        self._last = self.clock()
        for i, marked in zip(new, last.tolist(), strict=True):
            state = self.states[file_ids[i]]
            state.done.add(keys[i])
            state.marked = state.marked or marked
        if self.on_commit is not None:
            self.on_commit(files, start_s, end_s)
        return touched
