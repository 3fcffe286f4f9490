"""Stopping a command stops what it started: a terminal's Ctrl-C is for the command, not for the processes it
starts to help it, and a SIGTERM does not leave them behind.

A terminal sends Ctrl-C (SIGINT) to every process of the foreground command: the temporary Prefect server
and the local Dask workers as well as the command. Dying with it, the server takes the interrupted run's
record with it (the run cannot be marked crashed in a server that is gone, and every later request from the
command fails), and the workers print tracebacks while the trials they were running fail. So those
processes are started deaf to it; the command, which alone hears it, stops its work and then them, in order.

- `start_temporary_server()`: the temporary Prefect server a command without a Prefect API uses, started
  with SIGINT blocked (it inherits the mask; Prefect stops it with SIGTERM at exit).
- `exit_on_sigterm()`: a SIGTERM (`kill`, a service manager's stop) ends the command through its exit
  handlers, which stop that server; Prefect's flow engine, having recorded the run as crashed, re-sends
  SIGTERM to the handler it found, and the default one would end the process without them, leaving the
  temporary server running for good.
- `dask_setup`: a Dask worker preload (`preload=["flows.ctrl_c"]`) that makes a local worker ignore SIGINT
  (a nanny's worker is started by Dask's own thread, so it cannot inherit a mask from the command's).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

WORKER_PRELOAD = __name__


@contextmanager
def children_deaf_to_ctrl_c() -> Iterator[None]:
    """Processes started in this thread meanwhile never receive SIGINT: it is blocked in this thread and a
    child inherits the mask. A Ctrl-C meanwhile is not lost: it is raised in the main thread as ever, at
    once when another thread of the process takes it, else once this ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_temporary_server() -> bool:
    """Start the temporary Prefect server this process would start at its first flow call (none when a
    Prefect API is configured or Prefect may not start one), deaf to Ctrl-C; whether one runs now."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return False
    exit_on_sigterm()  # the server is this process's to stop, whatever ends it short of SIGKILL
    with children_deaf_to_ctrl_c():
        SubprocessASGIServer().start()
    return True


def exit_on_sigterm() -> None:
    """From now on SIGTERM is `SystemExit(143)` (128 + 15, as a shell reports it) in the main thread: the
    command unwinds and its exit handlers run (Prefect's stop of its temporary server among them)."""

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():  # where Python runs signal handlers
        signal.signal(signal.SIGTERM, terminated)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker process as it starts: SIGINT is ignored from then on (the
    cluster's owner closes the worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
