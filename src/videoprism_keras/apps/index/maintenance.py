"""The clips table's upkeep: when a maintenance pass is due, and which old versions it may
delete without failing a reader.

Every commit makes a table version and (adding rows) a small data fragment. Left alone, a
table written in many small commits is read fragment by fragment and keeps every version's
files. A pass (LanceDB's `optimize`) merges the small fragments, brings the vector index up
to date and deletes old versions. Writers look every few commits (`ClipTable.maintain`); a
pass runs when the small fragments, the versions since the last pass or the rows the vector
index lacks pass their bounds (constants.py, "maintenance"), and `videoprism index
--optimize` runs one for a cron.

Which versions go: Lance deletes those *committed* before a cutoff, but a reader is at
risk from a version's *replacement*: after a pause in commits longer than the retention,
a compaction's cleanup would delete the version every reader is on at that moment. So the
cutoff here is the commit time of a version that was replaced at least `keep_versions_s`
ago: every version deleted had been replaced that long before, whatever the gap before
it. That needs versions' times: those this process saw (`Upkeep.seen`), else the table's
list of versions (read once per handle: one small read per version).
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from ...constants import (
    MAINTAIN_CLOCK_MARGIN_SECONDS,
    MAINTAIN_SMALL_FRAGMENTS,
    MAINTAIN_UNINDEXED_ROWS,
    MAINTAIN_VERSIONS,
)
from . import ann, commits, store

if TYPE_CHECKING:
    from lancedb.table import LanceTable

log = logging.getLogger(__name__)

_NEVER = timedelta(days=36_500)  # the cleanup age that deletes nothing


class Maintained(Protocol):
    """What a pass needs of the index (`ClipTable`)."""

    uri: str
    ann_threshold: int
    keep_versions_s: float

    def latest(self, *, fresh: bool = False) -> LanceTable | None: ...


@dataclass
class Upkeep:
    """What one table handle knows between passes.

    Attributes:
        seen: list of (wall-clock seconds, version). Versions seen as the latest, oldest
            first, with the time the look for it began: no later version was committed
            by that time (the cutoff rests on it), and v existed then or within the look
            (milliseconds, next to `keep_versions_s`); any later version in the list was
            committed by its time.
        passed_at: int or None. The version after this handle's last pass (or when it
            first looked): versions since are counted against MAINTAIN_VERSIONS.
        listed: bool. Whether the table's list of versions was read into `seen`.
    """

    seen: list = field(default_factory=list)
    passed_at: int | None = None
    listed: bool = False

    def see(self, version: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not self.seen or self.seen[-1][1] != version:
            self.seen.append((now, int(version)))
        if self.passed_at is None:
            self.passed_at = int(version)

    def cleanup_age(self, keep_s: float, now: float) -> timedelta | None:
        """The `cleanup_older_than` that deletes only versions replaced at least `keep_s`
        seconds before `now`; None if no version is known to be (delete nothing)."""
        horizon = now - keep_s
        # The newest version seen by the horizon: every version before it was replaced by
        # then. The time an older one was seen bounds their commit times from above.
        at = bisect.bisect_right(self.seen, (horizon, float("inf"))) - 1
        if at < 0:
            return None
        replaced_by = self.seen[at][1]
        before = at
        while before >= 0 and self.seen[before][1] >= replaced_by:
            before -= 1
        if before < 0:
            return None
        del self.seen[:before]  # older times are never needed again
        seen_at = self.seen[0][0]
        return timedelta(seconds=now - seen_at + MAINTAIN_CLOCK_MARGIN_SECONDS)

    def read_versions(self, table: LanceTable) -> None:
        """The table's versions and their commit times, into `seen` (once per handle)."""
        listed = sorted((v["timestamp"].timestamp(), int(v["version"]))
                        for v in table.list_versions())  # fmt: skip
        self.seen = sorted(set(listed + self.seen))
        self.listed = True


@dataclass(frozen=True)
class Due:
    """Why a pass runs (all False: none does)."""

    build_index: bool = False
    fragments: bool = False
    versions: bool = False
    unindexed: bool = False

    def __bool__(self) -> bool:
        return self.build_index or self.fragments or self.versions or self.unindexed


def due(table: LanceTable, upkeep: Upkeep, ann_threshold: int, finishing: bool,
        compact: bool = False) -> Due:  # fmt: skip
    """What the table needs now (a manifest read: milliseconds).

    Args:
        table: `lancedb.table.LanceTable`. At its latest version.
        upkeep: `Upkeep`. This handle's memory (the version seen already in it).
        ann_threshold: int. Rows from which the vector index is built.
        finishing: bool. At the end of a run of writes: the vector index is then brought
            up to date whatever it lacks (between commits: past MAINTAIN_UNINDEXED_ROWS).
        compact: bool. Any small fragments are to be merged (the end of a long run of
            writes: its table is left as a fresh one). Defaults to False.
    """
    rows, found = table.count_rows(), ann.find(table)
    small = table.stats()["fragment_stats"]["num_small_fragments"]
    unindexed = table.index_stats(found.name).num_unindexed_rows if found else 0
    return Due(
        build_index=found is None and rows >= ann_threshold,
        fragments=small > (1 if compact else MAINTAIN_SMALL_FRAGMENTS),
        versions=table.version - upkeep.passed_at >= MAINTAIN_VERSIONS,
        unindexed=unindexed > (0 if finishing else MAINTAIN_UNINDEXED_ROWS),
    )


def run_pass(table: LanceTable, upkeep: Upkeep, keep_s: float, ann_threshold: int,
             exact: bool = False) -> None:  # fmt: skip
    """One pass: the vector index built if the table has reached `ann_threshold` rows,
    then compaction, the vector index brought up to date and the old versions deleted that
    were replaced at least `keep_s` seconds ago.

    Args:
        table: `lancedb.table.LanceTable`. At its latest version.
        upkeep: `Upkeep`. This handle's memory.
        keep_s: float. Seconds a replaced version is kept for its readers.
        ann_threshold: int. Rows from which the vector index is built.
        exact: bool. Read the table's versions (rather than only those this process saw)
            to delete all that may go: for a one-off pass. Defaults to False.
    """
    rows = table.count_rows()
    if ann.find(table) is None and rows >= ann_threshold:
        table.create_index("vector", config=ann.ann_config(rows), replace=True)
    table.optimize(cleanup_older_than=_NEVER)  # compaction and the index: long, maybe
    # Lance counts the cleanup's age from its own reading of the clock: a pass with nothing
    # left to compact reads it right after this one.
    now = time.time()
    age = upkeep.cleanup_age(keep_s, now)
    if age is None and (exact or not upkeep.listed):
        upkeep.read_versions(table)
        age = upkeep.cleanup_age(keep_s, time.time())
    if age is not None:
        table.optimize(cleanup_older_than=age)
    upkeep.see(table.version)
    upkeep.passed_at = int(table.version)


def maintain(index: Maintained, upkeep: Upkeep, *, finishing: bool, compact: bool,
             force: bool) -> bool:  # fmt: skip
    """`ClipTable.maintain` under its lock (see there): a pass if one is due, or `force`."""
    try:
        # Looked for now, not as a read saw it up to `refresh_seconds` ago: `seen` says that
        # no version newer than this one was committed by this time, taken before the look.
        looked = time.time()
        table = index.latest(fresh=True)
        upkeep.see(table.version, looked)
        if not force and not due(table, upkeep, index.ann_threshold, finishing, compact):
            return False
        run_pass(table, upkeep, index.keep_versions_s, index.ann_threshold, exact=force)
        return True
    except (OSError, RuntimeError, ValueError) as err:
        if force:
            raise store.translate(err, index.uri, "maintaining it", committing=True) from err
        # A pass yields to a writer's commit (Lance: its Rewrite is preempted): the next
        # look runs it again, nothing to warn about.
        quiet = commits.is_conflict(err)
        (log.info if quiet else log.warning)(
            f"videoprism: {index.uri}: index maintenance failed, the clips are all stored; "
            f"it runs again later ({err})")  # fmt: skip
        return False
