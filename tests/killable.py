"""For the worker processes that the kill tests stop mid-run."""

import time


def wait_to_be_killed():
    """Waits (an hour at most) for the test's SIGKILL or Ctrl-C, in short sleeps.

    A signal lands on whichever thread the kernel picks, and only wakes that one; Python
    runs the handler (KeyboardInterrupt) in the main thread when it next runs bytecode.
    One long `time.sleep` in the main thread could outlast the test's wait whenever
    SIGINT went to one of the threads of LanceDB, Ray or the decoder instead.
    """
    for _ in range(36_000):
        time.sleep(0.1)
