"""Run by the Ray tests as a separate process: the `videoprism` command, unchanged, except
that after `STOP` committed batches of clips the driver waits (every earlier batch
committed) for the test to kill it.

    python tests/ray_driver.py STOP index SOURCES -o INDEX --ray ADDRESS ...
"""

import sys
import time

from videoprism_keras import cli
from videoprism_keras.apps.index import VideoIndex

stop, commits = int(sys.argv[1]), [0]
commit = VideoIndex._commit


def counted(self, table, stale=None):
    if len(table) and commits[0] >= stop:
        print(f"waiting after {commits[0]} commits", file=sys.stderr, flush=True)
        for _ in range(36_000):  # short sleeps: see index_worker.wait_to_be_killed
            time.sleep(0.1)
    commit(self, table, stale)
    commits[0] += bool(len(table))


VideoIndex._commit = counted
sys.exit(cli.main(sys.argv[2:]))
