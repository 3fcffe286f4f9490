"""Who to tell as an `optimize` run's trials finish (the CLI's progress bar), kept out of `flows.optimize`:
the flow's function is shipped to Dask workers by value, and a ContextVar among its globals cannot be."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_trial_listener: ContextVar[Callable[[Any], None] | None] = ContextVar("optimize_listener", default=None)


@contextmanager
def trial_listener(callback: Callable[[Any], None]) -> Iterator[None]:
    """Call `callback(StudyProgress)` after each trial of an `optimize` run started in this context (the
    trial, and how many of the study's trials have finished); the flow runs in the caller's thread, so the
    context reaches it, and its windows' threads run in copies of the flow's context. Calls come one at a
    time, from any of those threads."""
    token = _trial_listener.set(callback)
    try:
        yield
    finally:
        _trial_listener.reset(token)


def current() -> Callable[[Any], None] | None:
    """The listener of this context, if any."""
    return _trial_listener.get()
