"""Run by the Ray tests as a separate process: the `videoprism` command, unchanged, except
that after `STOP` commits of clips the driver waits (every earlier commit made) for the
test to kill it.

    python tests/ray_driver.py STOP index SOURCES -o INDEX --ray ADDRESS ...
"""

import signal
import sys

from killable import wait_to_be_killed

from videoprism_keras import cli
from videoprism_keras.apps.index import IndexWriter

stop, commits = int(sys.argv[1]), [0]
commit = IndexWriter.commit


def counted(self, files, *args, **kwargs):
    if len(files) and commits[0] >= stop:
        print(f"waiting after {commits[0]} commits", file=sys.stderr, flush=True)
        wait_to_be_killed()
    commit(self, files, *args, **kwargs)
    commits[0] += bool(len(files))


IndexWriter.commit = counted
# Ctrl-C as from a terminal: see index_worker.py.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(cli.main(sys.argv[2:]))
