"""Commits that other writers' commits got in the way of: tried again, and counted.

Lance commits a new version with a conditional write (`If-None-Match` on S3, an atomic
rename on a disk): of two writers that read the same version, the second to commit finds
the first's version in its way. Lance then retries by itself: it rebases a commit that
does not touch what the other changed, and runs a `merge_insert` again against the new
version (a bounded number of times: see `_CONFLICT_WORDS`) when the other commit inserted
one of its keys (the `id` column's primary key, `store.PRIMARY_KEY`): the clip is then
held and not inserted twice. `MergeResult.num_attempts` says how many runs it took.

What still fails after Lance's retries (many writers committing at once: "Too many
concurrent writers", a commit conflict) is tried again here, the whole write against the
latest version, after a jittered, growing pause: every write of the index may run twice
(a merge inserts only clips the table lacks, a delete removes rows by predicate, an
update sets `last_clip`), so a retry changes nothing that the first try did. Past
`COMMIT_RETRIES` tries the commit fails with one line saying what to do.

`commit_latest` is such a commit of a table handle, under a local folder's lock;
`add_primary_key` gives a table made before the primary key its key, once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...constants import COMMIT_RETRIES, COMMIT_RETRY_BASE_S, COMMIT_RETRY_MAX_S
from . import store

if TYPE_CHECKING:
    from lancedb.table import LanceTable

# Lance's words for a commit that lost to another writer's (its `RetryableCommitConflict`,
# `CommitConflict`, `IncompatibleTransaction`, `TooMuchWriteContention` errors), raised
# after its own retries: in lancedb 0.40, a merge_insert run again at most 10 times within
# 30 s.
_CONFLICT_WORDS = ("commit conflict", "concurrent writ", "conflicts with concurrent",
                   "incompatible transaction", "too much write contention")  # fmt: skip


@dataclass(frozen=True)
class CommitAttempts:
    """How a handle's commits went (`ClipTable.attempts`).

    Attributes:
        commits: int. Commits made through `commit_latest` (merges, deletes, updates;
            not the table's creation, which no other writer's commit can be in the way
            of: the second creator opens the first's table).
        attempts: int. Tries they took: Lance's own runs of a merge
            (`MergeResult.num_attempts`) plus the tries here; a try that failed counts
            once. Equal to `commits` when no other writer got in the way.
        most: int. The most tries one commit took.
    """

    commits: int = 0
    attempts: int = 0
    most: int = 0

    def plus(self, tries: int) -> CommitAttempts:
        """These counts with one more commit, made in `tries` tries."""
        return CommitAttempts(self.commits + 1, self.attempts + tries, max(self.most, tries))


def is_conflict(err: BaseException) -> bool:
    """Whether `err` is Lance's refusal of a commit that another writer's commit got in
    the way of (and not a fault of the store or the data)."""
    text = str(err).lower()
    return any(word in text for word in _CONFLICT_WORDS)


def retried(write: Callable[[], int], uri: str, action: str,
            rng: random.Random | None = None,
            sleep: Callable[[float], None] = time.sleep) -> int:  # fmt: skip
    """Runs `write` (one commit against the latest version; it returns how many runs
    Lance took) until it is not refused for a conflict, at most `COMMIT_RETRIES` times.

    Args:
        write: callable. The commit; it returns Lance's attempts (1 where Lance says
            none).
        uri: str. The index, as the error names it.
        action: str. What the commit does, as the error names it ("writing to it").
        rng: `random.Random` or None. The pauses' jitter. Defaults to None (a fresh one).
        sleep: callable. How to pause. Defaults to `time.sleep`.

    Returns:
        The tries it took, Lance's included.

    Raises:
        store.StoreError: still refused after `COMMIT_RETRIES` tries.
    """
    rng = rng or random.Random()
    failed = 0
    while True:
        try:
            return failed + max(1, int(write()))
        except (OSError, RuntimeError, ValueError) as err:
            if not is_conflict(err):
                raise
            failed += 1
            if failed >= COMMIT_RETRIES:
                raise store.StoreError(
                    f"{uri}: other writers' commits kept getting in the way while {action} "
                    f"({failed} tries): this commit was not made; earlier commits stay. Run "
                    "the same command again to continue, or run fewer writers at once"
                ) from err
            # Jittered (writers that collided do not collide again in step) and growing
            # (many writers spread out), capped so that a retry comes within seconds.
            pause = min(COMMIT_RETRY_MAX_S, COMMIT_RETRY_BASE_S * 2 ** (failed - 1))
            sleep(pause * rng.uniform(0.5, 1.5))


def commit_latest(table: LanceTable, folder: Path | None, write: Callable[[LanceTable], Any],
                  uri: str, action: str) -> int:  # fmt: skip
    """One commit, `write(table)`, against the latest version (under the lock of `folder`,
    a local index's; None on an object store), tried again as `retried` does.

    Args:
        table: `lancedb.table.LanceTable`. The handle, moved to the latest version.
        folder: `Path` or None. The local index folder whose lock is taken.
        write: callable. The commit; a `MergeResult` it returns says Lance's runs.
        uri: str. The index, as an error names it.
        action: str. What the commit does, as an error names it.

    Returns:
        The tries it took, Lance's included.
    """

    def once():
        with store.locked(folder):
            table.checkout_latest()  # a write needs the newest, whatever reads may lag
            return getattr(write(table), "num_attempts", 1)

    return retried(once, uri, action)


def add_primary_key(table: LanceTable, folder: Path | None, uri: str) -> None:
    """A table created before the `id` column was its primary key gets it (once: Lance
    refuses to set it again), so that writers without a shared lock cannot insert one
    clip twice (`store.PRIMARY_KEY`). Nothing if it has it."""
    if store.has_primary_key(table.schema):
        return

    def once():
        with store.locked(folder):
            table.checkout_latest()
            if not store.has_primary_key(table.schema):
                try:
                    table.set_unenforced_primary_key("id")
                except ValueError as err:  # another writer set it meanwhile
                    if "already set" not in str(err):
                        raise
        return 1

    retried(once, uri, "marking its id column as the primary key")
