"""Holding back what native libraries write straight to file descriptor 2.

TensorFlow's and Ray's C++ sides print INFO lines when they load or start ("oneDNN custom
operations are on", "Could not find cuda drivers", Ray's log-level and authentication
notes), whatever the Python log level. In front of a command's own output they are noise;
if the block fails, they may explain why, so by default they are shown after all.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def held_stderr(replay_on_error=True):
    """File descriptor 2 goes to a temporary file meanwhile; replayed on an error unless
    told not to (where the caller says what failed in its own words)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            if replay_on_error:
                os.dup2(saved, 2)
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
