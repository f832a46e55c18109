"""Ray for the project's pipelines: this process's session, or a connection to a cluster,
or a new local instance shut down on leaving (`ray_session`), with Ray's own messages
kept off stdout; a bad address fails in seconds.

Apart from `ray_pipeline.py` so that what runs on Ray without Ray Data (`copy_ray.py`)
needs none of the pipeline's imports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from collections.abc import Iterator
from typing import Any

from ..native_logs import held_stderr

__all__ = ["RayUnavailable", "check_address", "driver_messages_on_stderr", "ray_session"]

CONNECT_TIMEOUT_S = 5.0
QUIET_ENV = "RAY_BACKEND_LOG_LEVEL"


class RayUnavailable(RuntimeError):
    """Ray cannot be used: not installed, or no cluster at the address (says which)."""


@contextlib.contextmanager
def ray_session(address: str | None = None, *, quiet: bool = True) -> Iterator[Any]:
    """Ray for the pipeline: the running session if this process has one; else a
    connection to `address`, or a new local instance, shut down on leaving.

    Args:
        address: str or None. "auto", "host:port" or "ray://…"; None for a new local
            instance. Defaults to None.
        quiet: bool. Keep Ray's log lines and C++ messages out of the terminal.
            Defaults to True.

    Yields:
        The `ray` module, initialised.
    """
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable("Ray is not installed: pip install 'videoprism-keras[ray]'") from err
    if ray.is_initialized():
        yield ray
        return
    check_address(address)
    options = dict(log_to_driver=not quiet, logging_level=logging.ERROR if quiet else "info")
    if address is None:
        options["include_dashboard"] = False
    saved = os.environ.get(QUIET_ENV)
    if quiet:  # Ray's C++ side logs benign errors to the terminal (e.g. ray#53727)
        os.environ[QUIET_ENV] = "fatal"
    with driver_messages_on_stderr(ray):  # from before init: its threads print
        try:
            held = held_stderr(replay_on_error=False) if quiet else contextlib.nullcontext()
            with held, warnings.catch_warnings():
                # Starting a local instance forks (then execs) with JAX's threads running.
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).splitlines()[0]
            raise RayUnavailable(f"no Ray cluster at {address}: {first}") from err
        finally:
            if saved is None:
                os.environ.pop(QUIET_ENV, None)
            else:
                os.environ[QUIET_ENV] = saved
        try:
            yield ray
        finally:
            ray.shutdown()


@contextlib.contextmanager
def driver_messages_on_stderr(ray: Any) -> Iterator[None]:
    """Ray's driver prints what the cluster reports ("(raylet) A worker died …") and, with
    `log_to_driver`, the workers' output to stdout, whatever the logging settings: here
    all of it goes to stderr, so that stdout holds the command's result only (a JSON
    reader would fail on those lines). Ray has no option for it; its module function is
    wrapped while the session lasts (and left alone if a Ray release renames it)."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None:
        yield
        return

    def to_stderr(data: dict, *args: Any, **kwargs: Any) -> Any:
        return original({**data, "is_err": True}, *args, **kwargs)

    worker.print_to_stdstream = to_stderr
    try:
        yield
    finally:
        worker.print_to_stdstream = original


def check_address(address: str | None) -> None:
    """A host:port that nothing answers fails in seconds (`ray.init` would retry for
    minutes)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as err:
        raise RayUnavailable(f"no Ray cluster at {address} ({err}): give the head node's "
                             "host:port (`ray start --head` prints it), 'auto', or nothing "
                             "for a local instance") from err  # fmt: skip
